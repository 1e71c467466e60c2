"""The rooms through real python-socketio clients against the running app, bad input included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import socketio

from server.appkeys import HUB, STORE
from server.auth.guard import AUTH_SERVICE
from server.auth.roles import Role
from server.hub import DomainEvent
from server.rooms.render_link import ServiceMeasurer, ServiceRenderer
from server.rooms.setup import ROOMS, WATCH_S
from server.rooms.socket_server import SOCKETIO
from shared.protocol import catalog
from tests.conftest import Noctis
from tests.rooms.clients import Inbox, call
from tests.rooms.rawclient import RawSocketIO
from tests.rooms.support import OTHER_STUDY, STUDY, SliceRenderer
from tests.rooms.yclient import YClient
from tests.support.sockets import socket_client

LINE = {
    "study_uid": STUDY,
    "kind": "length",
    "instance_uid": "1.2.3.4",
    "frame": 0,
    "points": [[1, 2], [30, 40]],
}


async def _studies(noctis: Noctis) -> None:
    await noctis.app[STORE]["dicom_studies"].insert_many(
        [
            {"_id": STUDY, "facility": "main"},
            {"_id": OTHER_STUDY, "facility": "elsewhere"},
        ]
    )


async def test_two_readers_share_annotations_chat_and_presence(noctis: Noctis) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    bob = await noctis.token_for("bob")
    async with socket_client(noctis.client, alice) as a, socket_client(noctis.client, bob) as b:
        inbox_a = Inbox(a, "room.op", "room.presence")
        inbox_b = Inbox(b, "room.op", "room.presence")
        joined = await call(a, "room.join", {"study_uid": STUDY})
        catalog().validate_ack("room.join", joined)
        await call(b, "room.join", {"study_uid": STUDY})
        created = await call(a, "annotation.create", LINE)
        catalog().validate_ack("annotation.create", created)
        op = await inbox_b.next("room.op")
        catalog().validate_outbound("room.op", op)
        assert (op["seq"], op["type"]) == (created["seq"], "annotation.created")
        assert (await inbox_a.next("room.op"))["seq"] == created["seq"]  # the author too
        await call(b, "chat.send", {"study_uid": STUDY, "text": "agreed"})
        chat = await inbox_a.next("room.op")
        assert (chat["type"], chat["seq"], chat["data"]["text"]) == ("chat.message", 2, "agreed")
        await a.emit("presence.update", {"study_uid": STUDY, "cursor": {"x": 5, "y": 6}})
        moved = await inbox_b.until(
            "room.presence",
            lambda p: any(m["username"] == "alice" and m["cursor"] for m in p["members"]),
        )
        catalog().validate_outbound("room.presence", moved)

        # Bob drops off and rejoins with the last seq he saw: he gets exactly what he missed.
        await b.disconnect()
    async with socket_client(noctis.client, alice) as a:
        await call(a, "room.join", {"study_uid": STUDY})
        await call(a, "chat.send", {"study_uid": STUDY, "text": "while you were away"})
    async with socket_client(noctis.client, bob) as b:
        again = await call(b, "room.join", {"study_uid": STUDY, "since": 2})
        assert again["mode"] == "ops"
        assert [(o["seq"], o["data"]["text"]) for o in again["ops"]] == [(3, "while you were away")]


async def test_bad_input_is_answered_and_changes_nothing(noctis: Noctis) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    doctor = await noctis.token_for("dr.who", Role.REFERRING_PHYSICIAN)
    async with socket_client(noctis.client, alice) as a:
        assert (await call(a, "no.such.event", {}))["error"]["code"] == "unknown_event"
        # Events before joining the room are refused.
        refused = await call(a, "annotation.create", LINE)
        assert refused["error"]["code"] == "forbidden"
        await call(a, "room.join", {"study_uid": STUDY})
        for payload in (
            {**LINE, "points": "1,2"},
            {**LINE, "kind": "laser"},
            {**LINE, "extra": 1},
            {"study_uid": "../etc", "kind": "length"},
            {**LINE, "study_uid": {"$ne": None}},
            None,
            "text",
        ):
            answer = await call(a, "annotation.create", payload)
            assert answer["error"]["code"] == "validation_failed", payload
        assert (await call(a, "chat.send", {"study_uid": STUDY, "text": "x" * 4001}))["error"][
            "code"
        ] == "validation_failed"
        other = await call(a, "room.join", {"study_uid": OTHER_STUDY})
        assert other["error"]["code"] == "not_found"
        assert await noctis.app[STORE]["annotations"].count_documents({}) == 0
        assert await noctis.app[STORE]["room_ops"].count_documents({}) == 0
    async with socket_client(noctis.client, doctor) as d:
        answer = await call(d, "room.join", {"study_uid": STUDY})
        assert answer["error"]["code"] == "forbidden"
        invite = await call(d, "study.invite", {"study_uid": STUDY, "username": "dr.who"})
        assert invite["error"]["code"] == "forbidden"
    async with socket_client(noctis.client, alice) as a:
        invited = await call(a, "study.invite", {"study_uid": STUDY, "username": "dr.who"})
        assert invited == {"ok": True, "invited": "dr.who"}
    async with socket_client(noctis.client, doctor) as d:
        assert (await call(d, "room.join", {"study_uid": STUDY}))["ok"] is True


async def test_an_oversized_message_closes_only_that_connection(noctis: Noctis) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    async with socket_client(noctis.client, alice) as a, socket_client(noctis.client, alice) as b:
        await call(a, "room.join", {"study_uid": STUDY})
        gone = asyncio.Event()
        a.on("disconnect", lambda *args: gone.set())
        await a.emit("chat.send", {"study_uid": STUDY, "text": "x" * (400 * 1024)})
        await asyncio.wait_for(gone.wait(), 10)
        assert (await call(b, "room.join", {"study_uid": STUDY}))["ok"] is True
        assert await noctis.app[STORE]["chat_messages"].count_documents({}) == 0


async def test_a_flooding_client_is_rate_limited_then_cut_off(noctis: Noctis) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    async with socket_client(noctis.client, alice) as a, socket_client(noctis.client, alice) as b:
        await call(a, "room.join", {"study_uid": STUDY})
        gone = asyncio.Event()
        a.on("disconnect", lambda *args: gone.set())
        answers: list[Any] = []
        for n in range(1000):
            await a.emit(
                "presence.update",
                {"study_uid": STUDY, "cursor": {"x": n, "y": 0}},
                callback=answers.append,
            )
            if gone.is_set():
                break
        await asyncio.wait_for(gone.wait(), 10)
        codes = [answer.get("error", {}).get("code", "ok") for answer in answers]
        assert codes[0] == "ok"
        assert "rate_limited" in codes
        assert b.connected
        assert (await call(b, "room.join", {"study_uid": STUDY}))["ok"] is True


async def test_report_draft_converges_between_two_writers(noctis: Noctis) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    bob = await noctis.token_for("bob")
    async with socket_client(noctis.client, alice) as a, socket_client(noctis.client, bob) as b:
        inboxes = {"a": Inbox(a, "report.sync"), "b": Inbox(b, "report.sync")}
        clients = {"a": YClient(), "b": YClient()}
        sockets = {"a": a, "b": b}
        for name, sio in sockets.items():
            await call(sio, "room.join", {"study_uid": STUDY})
            answer = await call(
                sio, "report.sync", {"study_uid": STUDY, "message": clients[name].step1()}
            )
            catalog().validate_ack("report.sync", answer)
            for message in answer["messages"]:
                reply = clients[name].receive(message)
                if reply:
                    await call(sio, "report.sync", {"study_uid": STUDY, "message": reply})
        clients["a"].text += "No acute findings."
        clients["b"].text += "Comparison: none. "
        sent = {name: clients[name].take() for name in clients}
        for name, messages in sent.items():
            for message in messages:
                ack = await call(
                    sockets[name], "report.sync", {"study_uid": STUDY, "message": message}
                )
                assert ack == {"ok": True, "messages": []}
        for name, other in (("a", "b"), ("b", "a")):
            for _ in sent[other]:
                relayed = await inboxes[name].next("report.sync")
                catalog().validate_outbound("report.sync", relayed)
                clients[name].receive(relayed["message"])
        assert str(clients["a"].text) == str(clients["b"].text)
        assert "No acute findings." in str(clients["a"].text)
        assert "Comparison: none. " in str(clients["a"].text)


async def test_viewport_updates_come_back_as_binary_frames(noctis: Noctis) -> None:
    await _studies(noctis)
    rooms = noctis.app[ROOMS]
    # The app wires the render service in; this test swaps in a renderer needing no archive.
    assert isinstance(rooms.frames.renderer, ServiceRenderer)
    assert isinstance(rooms.annotations.measurer, ServiceMeasurer)
    rooms.frames.renderer = SliceRenderer()
    alice = await noctis.token_for("alice")
    async with socket_client(noctis.client, alice) as a:
        inbox = Inbox(a, "frame", "frame.error")
        await call(a, "room.join", {"study_uid": STUDY})
        viewport = {"instance_uid": "1.2.3.4", "frame": 7, "canvas": [256, 256]}
        await a.emit("presence.update", {"study_uid": STUDY, "viewport": viewport})
        meta, data = await inbox.next("frame")
        catalog().validate_outbound("frame", meta)
        assert (meta["frame"], meta["width"], meta["content_type"]) == (7, 256, "image/jpeg")
        assert isinstance(data, bytes)
        assert data[:2] == b"\xff\xd8"
        missing = await call(a, "viewport.render", {"study_uid": STUDY, "viewport": {"frame": 1}})
        assert missing["error"]["code"] == "validation_failed"


async def test_a_client_that_never_reads_is_cut_off(noctis: Noctis) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    sio_server = noctis.app[SOCKETIO]
    host, port = noctis.client.server.host, noctis.client.server.port
    assert isinstance(port, int)
    stalled = await RawSocketIO.connect(str(host), port, alice)
    await stalled.emit("room.join", {"study_uid": STUDY})
    try:
        async with contextlib.AsyncExitStack() as stack:
            senders = [
                await stack.enter_async_context(socket_client(noctis.client, alice))
                for _ in range(4)
            ]
            for sender in senders:
                await call(sender, "room.join", {"study_uid": STUDY})
            stalled_sids = set(sio_server.eio.sockets) - {
                sio_server.manager.eio_sid_from_sid(s.get_sid(), "/") for s in senders
            }
            assert len(stalled_sids) == 1
            text = "x" * 4000

            # The kernel buffers take ~3 MB (about 700 of these) before anything queues.
            async def flood(sender: socketio.AsyncClient) -> None:
                # Bounded in time rather than count: a loaded machine sends fewer per second.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if not stalled_sids & set(sio_server.eio.sockets):
                        return
                    answer = await call(sender, "chat.send", {"study_uid": STUDY, "text": text})
                    if "error" in answer:
                        assert answer["error"]["code"] == "rate_limited"
                        await asyncio.sleep(0.1)

            await asyncio.gather(*(flood(sender) for sender in senders))
            # The watchdog looks once a WATCH_S; give it a few looks after the flood ends.
            for _ in range(int(5 * WATCH_S / 0.1)):
                if not stalled_sids & set(sio_server.eio.sockets):
                    break
                await asyncio.sleep(0.1)
            assert not stalled_sids & set(sio_server.eio.sockets), "the stalled client is still on"
            assert all(sender.connected for sender in senders)
    finally:
        stalled.close()


async def test_an_alert_raised_on_the_hub_reaches_room_worklist_and_assignee(
    noctis: Noctis,
) -> None:
    await _studies(noctis)
    alice = await noctis.token_for("alice")
    bob = await noctis.token_for("bob")
    bob_id = (await noctis.app[AUTH_SERVICE].users.by_username("bob")).id  # type: ignore[union-attr]
    tech = await noctis.token_for("tech", Role.TECHNICIAN)
    async with (
        socket_client(noctis.client, alice) as reader,
        socket_client(noctis.client, bob) as assignee,
        socket_client(noctis.client, tech) as desk,
    ):
        inboxes = {
            "reader": Inbox(reader, "room.op"),
            "assignee": Inbox(assignee, "alert"),
            "desk": Inbox(desk, "alert"),
        }
        await call(reader, "room.join", {"study_uid": STUDY})
        assert (await call(desk, "worklist.join", {})) == {"ok": True, "room": "worklist:main"}
        raised = {
            "id": "ai-7",
            "study_uid": STUDY,
            "facility": "main",
            "severity": "critical",
            "status": "open",
            "title": "Pneumothorax suspected",
            "assigned_to": bob_id,
            "version": 1,
            "raised_at": 1.0,
        }
        await noctis.app[HUB].publish(DomainEvent("alert.raised", raised, "main"))
        op = await inboxes["reader"].next("room.op")
        assert (op["type"], op["data"]["id"]) == ("alert.changed", "ai-7")
        assert (await inboxes["desk"].next("alert"))["id"] == "ai-7"
        assert (await inboxes["assignee"].next("alert"))["id"] == "ai-7"

        acked = await call(reader, "alert.acknowledge", {"alert_id": "ai-7", "version": 1})
        catalog().validate_ack("alert.acknowledge", acked)
        assert (await inboxes["desk"].next("alert"))["status"] == "acknowledged"
        assert (await inboxes["reader"].next("room.op"))["data"]["status"] == "acknowledged"
        denied = await call(desk, "alert.resolve", {"alert_id": "ai-7", "version": 2})
        assert denied["error"]["code"] == "forbidden"

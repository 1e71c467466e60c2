"""Two real server processes, one Redis, one store: readers on different nodes share a room.

Stopping a node sends its readers to the other; they re-join with the last seq they saw and
get what they missed, and nothing persisted is lost. Order comes from sequence numbers.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import socketio

from server.auth.roles import Role
from server.auth.users import Users
from server.store.database import Store
from tests.conftest import TEST_PASSWORD, TEST_SECRET
from tests.rooms.clients import Inbox, call
from tests.rooms.nodes import login, node, wait_ready
from tests.rooms.support import STUDY
from tests.rooms.yclient import YClient
from tests.support.servers import redis_server

EVENTS = ("room.op", "room.presence", "report.sync", "follow.viewport")


async def _connect(url: str, token: str) -> tuple[socketio.AsyncClient, Inbox]:
    sio = socketio.AsyncClient(reconnection=False)
    inbox = Inbox(sio, *EVENTS)
    await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return sio, inbox


async def test_readers_on_two_nodes_share_a_room_and_survive_a_node_stopping(
    store_url: str, tmp_path: Path
) -> None:
    database = f"t{uuid.uuid4().hex[:16]}"
    store = Store(store_url, database)
    users = Users(store)
    await users.create("alice", TEST_PASSWORD, Role.RADIOLOGIST, "main")
    await users.create("bob", TEST_PASSWORD, Role.RADIOLOGIST, "main")
    await store["studies"].insert_one({"StudyInstanceUID": STUDY, "facility": "main"})
    clients: list[socketio.AsyncClient] = []
    try:
        with redis_server() as redis_url:
            options: dict[str, Any] = {
                "mongo_url": store_url,
                "mongo_db": database,
                "redis_url": redis_url,
                "secret": TEST_SECRET,
            }
            with node(tmp_path / "one", **options) as one, node(tmp_path / "two", **options) as two:
                await asyncio.gather(wait_ready(one), wait_ready(two))
                alice_token = await login(one, "alice", TEST_PASSWORD)
                bob_token = await login(two, "bob", TEST_PASSWORD)
                a, inbox_a = await _connect(one.url, alice_token)
                b, inbox_b = await _connect(two.url, bob_token)
                clients += [a, b]
                await call(a, "room.join", {"study_uid": STUDY})
                await call(b, "room.join", {"study_uid": STUDY})

                # Presence crosses nodes.
                await a.emit("presence.update", {"study_uid": STUDY, "cursor": {"x": 1, "y": 2}})
                await inbox_b.until(
                    "room.presence",
                    lambda p: any(m["username"] == "alice" and m["cursor"] for m in p["members"]),
                )
                # So do annotations and chat, and the order is the seq order.
                created = await call(
                    a,
                    "annotation.create",
                    {
                        "study_uid": STUDY,
                        "kind": "arrow",
                        "instance_uid": "1.2.3",
                        "frame": 0,
                        "points": [[0, 0], [4, 4]],
                    },
                )
                texts = [f"line {n}" for n in range(30)]
                await asyncio.gather(
                    *(call(a, "chat.send", {"study_uid": STUDY, "text": t}) for t in texts[:15]),
                    *(call(b, "chat.send", {"study_uid": STUDY, "text": t}) for t in texts[15:]),
                )
                received = [await inbox_b.next("room.op") for _ in range(31)]
                seqs = [op["seq"] for op in received]
                assert sorted(seqs) == list(range(created["seq"], created["seq"] + 31))
                # Both nodes' readers agree on what each seq is, whatever order Redis used.
                seen_by_a = [await inbox_a.next("room.op") for _ in range(31)]
                assert {op["seq"]: op["data"] for op in seen_by_a} == {
                    op["seq"]: op["data"] for op in received
                }

                # Report edits cross nodes.
                ya, yb = YClient(), YClient()
                for sio, y in ((a, ya), (b, yb)):
                    answer = await call(
                        sio, "report.sync", {"study_uid": STUDY, "message": y.step1()}
                    )
                    for message in answer["messages"]:
                        y.receive(message)
                ya.text += "Impression: normal."
                for message in ya.take():
                    await call(a, "report.sync", {"study_uid": STUDY, "message": message})
                yb.receive((await inbox_b.next("report.sync"))["message"])
                assert str(yb.text) == "Impression: normal."

                # Node two stops; Bob reconnects to node one and catches up from his last seq.
                last_seen = max(seqs)
                two.stop()
                for _ in range(100):
                    if not b.connected:
                        break
                    await asyncio.sleep(0.1)
                await call(a, "chat.send", {"study_uid": STUDY, "text": "are you back?"})
                b2, _ = await _connect(one.url, bob_token)
                clients.append(b2)
                again = await call(b2, "room.join", {"study_uid": STUDY, "since": last_seen})
                assert again["mode"] == "ops"
                assert [op["data"]["text"] for op in again["ops"]] == ["are you back?"]
                snapshot = (await call(b2, "room.join", {"study_uid": STUDY}))["snapshot"]
                assert [x["id"] for x in snapshot["annotations"]] == [created["annotation"]["id"]]
                assert len(snapshot["chat"]) == 31
                yb2 = YClient()
                answer = await call(b2, "report.sync", {"study_uid": STUDY, "message": yb2.step1()})
                for message in answer["messages"]:
                    yb2.receive(message)
                assert str(yb2.text) == "Impression: normal."
    finally:
        for sio in clients:
            if sio.connected:
                await sio.disconnect()
        await store.client.drop_database(database)
        await store.close()

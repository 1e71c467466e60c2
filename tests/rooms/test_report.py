"""The report draft: y-protocols sync through the room, persisted, compacted, convergent."""

from __future__ import annotations

import pytest
from pycrdt import Text

from server.auth.roles import Role
from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.rooms.report import ReportDrafts
from server.rooms.service import Rooms
from server.store.database import Store
from tests.rooms.support import STUDY, add_study, make_rooms, make_user
from tests.rooms.yclient import YClient, b64


async def _sync(rooms: Rooms, principal: object, sid: str, client: YClient) -> None:
    answer = await rooms.report_sync(principal, sid, STUDY, client.step1())  # type: ignore[arg-type]
    for message in answer["messages"]:
        reply = client.receive(message)
        if reply is not None:
            await rooms.report_sync(principal, sid, STUDY, reply)  # type: ignore[arg-type]


async def _push(rooms: Rooms, principal: object, sid: str, client: YClient) -> None:
    for message in client.take():
        await rooms.report_sync(principal, sid, STUDY, message)  # type: ignore[arg-type]


def _deliver(channel: MemoryChannel, sid: str, client: YClient, start: int) -> int:
    relayed = channel.received(sid, "report.sync")
    for payload in relayed[start:]:
        client.receive(payload["message"])
    return len(relayed)


async def test_two_writers_converge_and_the_draft_survives_a_restart(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel, compact_every=5)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)
    a, b = YClient(), YClient()
    await _sync(rooms, alice, "a", a)
    await _sync(rooms, bob, "b", b)

    a.text += "Findings: "
    await _push(rooms, alice, "a", a)
    seen_b = _deliver(channel, "b", b, 0)
    assert str(b.text) == "Findings: "
    # Both type at once, before seeing each other's keystrokes.
    for word in ("no ", "acute ", "bleed."):
        a.text += word
    b.text.insert(0, "CT head. ")
    await _push(rooms, alice, "a", a)
    await _push(rooms, bob, "b", b)
    _deliver(channel, "a", a, 0)
    _deliver(channel, "b", b, seen_b)
    assert str(a.text) == str(b.text)
    assert str(a.text) == "CT head. Findings: no acute bleed."
    assert await store["report_snapshots"].count_documents({}) == 1

    restarted = ReportDrafts(store)
    doc, _ = await restarted.load(STUDY)
    assert str(doc.get("body", type=Text)) == str(a.text)
    late = YClient()
    rooms_after = make_rooms(store)
    await rooms_after.join(bob, "c", STUDY, None)
    await _sync(rooms_after, bob, "c", late)
    assert str(late.text) == str(a.text)


async def test_garbage_and_readers_without_write_rights_are_refused(store: Store) -> None:
    await add_study(store)
    rooms = make_rooms(store)
    doctor = await make_user(store, "dr.who", Role.REFERRING_PHYSICIAN)
    await rooms.access.invitations.invite(STUDY, doctor.user_id, doctor)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(doctor, "d", STUDY, None)
    garbage = [b"\x01\x00\x01", b"\x00\x02\x05abc", b"\x00\x02\x03\xff\xff\xff"]
    for bad in ["not base64!", *(b64(g) for g in garbage)]:
        with pytest.raises(ApiError) as caught:
            await rooms.report_sync(alice, "a", STUDY, bad)
        assert caught.value.code == "validation_failed"
    writer = YClient()
    writer.text += "draft"
    with pytest.raises(ApiError) as caught:
        await rooms.report_sync(doctor, "d", STUDY, writer.take()[0])
    assert caught.value.code == "forbidden"
    reader = YClient()
    await _sync(rooms, doctor, "d", reader)  # reading is allowed
    assert await store["report_updates"].count_documents({}) == 0

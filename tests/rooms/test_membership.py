"""Joining study rooms: who may, the snapshot, the sequence, and resync after a reconnect."""

from __future__ import annotations

import pytest

from server.auth.roles import Role
from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.store.database import Store
from shared.protocol import catalog
from tests.rooms.support import OTHER_STUDY, STUDY, add_study, make_rooms, make_user

LINE = {"kind": "length", "instance_uid": "1.2.3.4", "frame": 0, "points": [[1, 2], [30, 40]]}


async def test_join_answers_a_snapshot_and_writes_an_audit_entry(store: Store) -> None:
    await add_study(store)
    rooms = make_rooms(store)
    alice = await make_user(store, "alice")
    answer = await rooms.join(alice, "s1", STUDY, None)
    catalog().validate_ack("room.join", answer)
    assert answer["mode"] == "snapshot"
    snapshot = answer["snapshot"]
    assert snapshot["seq"] == 0
    assert [p["username"] for p in snapshot["participants"]] == ["alice"]
    assert (snapshot["annotations"], snapshot["chat"], snapshot["alerts"]) == ([], [], [])
    entry = await store["audit"].find_one({"action": "room.join"})
    assert entry is not None
    assert (entry["actor"], entry["outcome"], entry["target"]) == (
        "alice",
        "success",
        f"study:{STUDY}",
    )


async def test_ops_carry_the_next_sequence_number_and_reach_the_room(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "s1", STUDY, None)
    await rooms.join(bob, "s2", STUDY, None)
    first = await rooms.annotate(alice, "s1", "create", {"study_uid": STUDY, **LINE})
    second = await rooms.chat_send(bob, "s2", {"study_uid": STUDY, "text": "see this"})
    assert first["seq"] == 1
    ops = channel.received("s1", "room.op")
    assert [op["seq"] for op in ops] == [1, 2]
    assert [op["type"] for op in ops] == ["annotation.created", "chat.message"]
    assert channel.received("s2", "room.op") == ops
    for op in ops:
        catalog().validate_outbound("room.op", op)
    assert ops[1]["data"] == second["message"]


async def test_reconnect_since_gets_missing_ops_or_a_snapshot(store: Store) -> None:
    await add_study(store)
    rooms = make_rooms(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "s1", STUDY, None)
    for n in range(5):
        await rooms.chat_send(alice, "s1", {"study_uid": STUDY, "text": f"message {n}"})
    await rooms.disconnected("s1")

    again = await rooms.join(alice, "s9", STUDY, 3)
    catalog().validate_ack("room.join", again)
    assert again["mode"] == "ops"
    assert [op["seq"] for op in again["ops"]] == [4, 5]
    assert again["seq"] == 5

    rooms.log.replay_limit = 2
    far = await rooms.join(alice, "s10", STUDY, 1)
    assert far["mode"] == "snapshot"
    assert [m["text"] for m in far["snapshot"]["chat"]] == [f"message {n}" for n in range(5)]
    # A client claiming a seq the room never reached (a restored database) gets a snapshot.
    future = await rooms.resync(STUDY, 99)
    assert future["mode"] == "snapshot"


async def test_studies_of_another_facility_look_like_unknown_ones(store: Store) -> None:
    await add_study(store, OTHER_STUDY, facility="elsewhere")
    rooms = make_rooms(store)
    alice = await make_user(store, "alice")
    for study in (OTHER_STUDY, "1.2.3.999"):
        with pytest.raises(ApiError) as caught:
            await rooms.join(alice, "s1", study, None)
        assert caught.value.code == "not_found"
    denied = await store["audit"].count_documents({"action": "room.join", "outcome": "denied"})
    assert denied == 2
    assert rooms.presence.local == {}
    admin = await make_user(store, "root", Role.ADMIN, facility="main")
    answer = await rooms.join(admin, "s2", OTHER_STUDY, None)
    assert answer["snapshot"]["seq"] == 0


async def test_referring_physicians_need_an_invitation(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    doctor = await make_user(store, "dr.who", Role.REFERRING_PHYSICIAN)
    tech = await make_user(store, "tech", Role.TECHNICIAN)
    rad = await make_user(store, "rad")
    with pytest.raises(ApiError) as caught:
        await rooms.join(doctor, "s1", STUDY, None)
    assert caught.value.code == "forbidden"
    with pytest.raises(ApiError) as caught:
        await rooms.invite(tech, STUDY, "dr.who")
    assert caught.value.code == "forbidden"
    with pytest.raises(ApiError) as caught:
        await rooms.invite(rad, STUDY, "nobody")
    assert caught.value.code == "not_found"
    assert await rooms.invite(rad, STUDY, "dr.who") == "dr.who"
    assert await rooms.invite(rad, STUDY, "dr.who") == "dr.who"  # idempotent
    await channel.enter("doctor-private", f"user:{doctor.user_id}")
    invitation = channel.received("doctor-private", "study.invitation")
    assert invitation == [{"study_uid": STUDY, "by": {"user_id": rad.user_id, "username": "rad"}}]
    answer = await rooms.join(doctor, "s1", STUDY, None)
    assert answer["mode"] == "snapshot"
    # The invitation is for that study only.
    await add_study(store, OTHER_STUDY)
    with pytest.raises(ApiError):
        await rooms.join(doctor, "s2", OTHER_STUDY, None)
    # Technicians have no room permission at all.
    with pytest.raises(ApiError) as caught:
        await rooms.join(tech, "s3", STUDY, None)
    assert caught.value.code == "forbidden"


async def test_events_need_membership_of_that_room(store: Store) -> None:
    await add_study(store)
    await add_study(store, OTHER_STUDY)
    rooms = make_rooms(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "s1", STUDY, None)
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(alice, "s1", "create", {"study_uid": OTHER_STUDY, **LINE})
    assert caught.value.code == "forbidden"
    await rooms.leave("s1", STUDY)
    with pytest.raises(ApiError):
        await rooms.chat_send(alice, "s1", {"study_uid": STUDY, "text": "hello"})
    assert await store["room_ops"].count_documents({}) == 0

"""Presence batched per tick (latest wins), participants across nodes, and follow mode."""

from __future__ import annotations

import asyncio

import pytest

from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.rooms.presence import Presence
from server.store.database import Store
from shared.protocol import catalog
from tests.rooms.support import STUDY, SliceRenderer, add_study, make_rooms, make_user

VIEW = {"instance_uid": "1.2.3.4", "frame": 10, "canvas": [256, 256], "zoom": 1.5}


async def test_presence_is_batched_per_tick_and_latest_wins(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)
    await rooms.presence.flush()
    channel.sent.clear()
    for x in range(10):
        await rooms.presence_update(
            "a", {"study_uid": STUDY, "cursor": {"x": x, "y": 1}, "render": False}
        )
    rooms.typing("b", STUDY, True)
    assert channel.received("b", "room.presence") == []
    await rooms.presence.flush()
    batches = channel.received("b", "room.presence")
    assert len(batches) == 1
    catalog().validate_outbound("room.presence", batches[0])
    by_user = {m["username"]: m for m in batches[0]["members"]}
    assert by_user["alice"]["cursor"] == {"x": 9, "y": 1}
    assert by_user["bob"]["typing"] is True
    await rooms.presence.flush()
    assert len(channel.received("b", "room.presence")) == 1  # nothing new, nothing sent

    await rooms.disconnected("b")
    await rooms.presence.flush()
    assert channel.received("a", "room.presence")[-1]["left"] == ["b"]


async def test_participants_and_viewports_are_shared_through_the_store(store: Store) -> None:
    await add_study(store)
    rooms = make_rooms(store)
    other_node = Presence(store, MemoryChannel(), node_id="node-b")
    alice = await make_user(store, "alice")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.presence_update("a", {"study_uid": STUDY, "viewport": VIEW, "render": False})
    await rooms.presence.flush()
    seen = await other_node.participants(STUDY)
    assert [(p["username"], p["viewport"]) for p in seen] == [("alice", VIEW)]
    await rooms.presence.forget_node()
    assert await other_node.participants(STUDY) == []


async def test_follow_present_handover_step_out_and_stop(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)

    await rooms.present(alice, "a", STUDY)
    with pytest.raises(ApiError) as caught:
        await rooms.present(bob, "b", STUDY)
    assert caught.value.code == "conflict"
    await rooms.presence_update("a", {"study_uid": STUDY, "viewport": VIEW, "render": False})
    followed = channel.received("b", "follow.viewport")
    assert followed == [
        {
            "study_uid": STUDY,
            "presenter": {"user_id": alice.user_id, "username": "alice"},
            "viewport": VIEW,
            "node": "node-a",
        }
    ]
    assert channel.received("a", "follow.viewport") == []

    rooms.follow("b", STUDY, False)
    await rooms.presence.flush()
    members = {m["username"]: m for m in channel.received("a", "room.presence")[-1]["members"]}
    assert members["bob"]["following"] is False

    with pytest.raises(ApiError) as caught:
        await rooms.handover(bob, "b", STUDY, bob.user_id)
    assert caught.value.code == "forbidden"
    await rooms.handover(alice, "a", STUDY, bob.user_id)
    snapshot = await rooms.snapshot(STUDY)
    assert snapshot["presenter"] == {"user_id": bob.user_id, "username": "bob"}

    await rooms.disconnected("b")
    snapshot = await rooms.snapshot(STUDY)
    assert snapshot["presenter"] is None
    changes = [op for op in channel.received("a", "room.op") if op["type"] == "presenter.changed"]
    assert [op["data"]["presenter"] and op["data"]["presenter"]["username"] for op in changes] == [
        "alice",
        "bob",
        None,
    ]
    await rooms.present(alice, "a", STUDY)
    await rooms.stop_presenting(alice, "a", STUDY)
    assert (await rooms.snapshot(STUDY))["presenter"] is None


async def test_local_followers_get_the_presenters_frame_rendered_once(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    renderer = SliceRenderer()
    rooms = make_rooms(store, channel, renderer=renderer)
    alice = await make_user(store, "alice")
    readers = [await make_user(store, f"reader{n}") for n in range(5)]
    await rooms.join(alice, "a", STUDY, None)
    for n, reader in enumerate(readers):
        await rooms.join(reader, f"r{n}", STUDY, None)
    rooms.follow("r4", STUDY, False)  # stepped out: renders nothing of the presenter's
    await rooms.present(alice, "a", STUDY)
    await rooms.presence_update("a", {"study_uid": STUDY, "viewport": VIEW})
    while rooms.frames._tasks:
        await asyncio.gather(*list(rooms.frames._tasks))
    ((presenter_meta, _),) = channel.received("a", "frame")
    for n in range(4):
        ((meta, data),) = channel.received(f"r{n}", "frame")
        assert meta["key"] == presenter_meta["key"]
        assert data[:2] == b"\xff\xd8"
    assert channel.received("r4", "frame") == []
    assert renderer.renders == 1

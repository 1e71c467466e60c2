"""The op log claims sequence numbers by insert, and batches inserts, on the real store."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import DuplicateKeyError

from server.rooms.batched import InsertBatcher
from server.rooms.channel import MemoryChannel
from server.rooms.oplog import OPS, RoomLog
from server.store.database import Store
from tests.rooms.support import STUDY as SUPPORT_STUDY
from tests.rooms.support import add_study, make_rooms, make_user

STUDY = "1.2.826.0.1.3680043.10.77"


async def test_concurrent_inserts_share_batches_and_each_caller_hears_its_own_error(
    store: Store,
) -> None:
    collection = store["batched_things"]
    await collection.create_index("n", unique=True)
    batcher = InsertBatcher(collection)
    results = await asyncio.gather(
        *(batcher.insert({"n": n % 30}) for n in range(40)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 10
    assert all(isinstance(r, DuplicateKeyError) for r in refused)
    assert sorted([doc["n"] async for doc in collection.find()]) == list(range(30))
    assert batcher.documents == 40
    assert batcher.batches < 40  # the inserts that arrived during a write went out together


async def test_an_idle_batcher_writes_at_once(store: Store) -> None:
    batcher = InsertBatcher(store["batched_things"])
    await batcher.insert({"n": 1})
    assert await store["batched_things"].count_documents({"n": 1}) == 1
    assert (batcher.batches, batcher.documents) == (1, 1)


async def test_two_nodes_appending_to_one_room_get_distinct_gapless_seqs(store: Store) -> None:
    """Two logs stand for two server processes sharing the store: every claim that loses to the
    other node rereads and tries the next number, so the room's ops are numbered 1..N once."""
    first, second = RoomLog(store), RoomLog(store)
    ops = await asyncio.gather(
        *(
            (first if n % 2 else second).append(STUDY, "chat.message", None, {"n": n})
            for n in range(60)
        )
    )
    seqs = sorted(op["seq"] for op in ops)
    assert seqs == list(range(1, 61))
    stored = [doc["seq"] async for doc in store[OPS].find({"study_uid": STUDY}).sort("seq", 1)]
    assert stored == seqs
    assert await first.current(STUDY) == await second.current(STUDY) == 60


async def test_a_log_started_late_continues_after_the_stored_ops(store: Store) -> None:
    for n in range(3):
        await RoomLog(store).append(STUDY, "chat.message", None, {"n": n})
    restarted = RoomLog(store)
    op = await restarted.append(STUDY, "chat.message", None, {"n": 3})
    assert op["seq"] == 4
    current, ops = await restarted.since(STUDY, 2)
    assert current == 4
    assert [o["seq"] for o in ops or []] == [3, 4]


@pytest.mark.parametrize("since", [5, 0])
async def test_since_beyond_or_too_far_behind_asks_for_a_snapshot(store: Store, since: int) -> None:
    log = RoomLog(store)
    log.replay_limit = 2
    for n in range(4):
        await log.append(STUDY, "chat.message", None, {"n": n})
    current, ops = await log.since(STUDY, since)
    assert (current, ops) == (4, None)


async def test_a_node_that_heard_the_other_nodes_ops_claims_past_them(store: Store) -> None:
    """Two nodes taking turns in one room: a node that was told of the other's op claims the
    next seq at once; one that was not loses a claim first (refused insert, reread, insert)."""
    first, second = RoomLog(store), RoomLog(store)
    await first.append(STUDY, "chat.message", None, {"n": 0})
    told = await second.append(STUDY, "chat.message", None, {"n": 1})
    first.seen(told)
    assert (await first.append(STUDY, "chat.message", None, {"n": 2}))["seq"] == 3
    assert first.lost_claims == 0
    assert (await second.append(STUDY, "chat.message", None, {"n": 3}))["seq"] == 4
    assert second.lost_claims == 1
    # Whatever arrives is checked: junk, other rooms and old seqs change nothing.
    for junk in (None, [], {"study_uid": STUDY}, {"study_uid": STUDY, "seq": "9"}):
        first.seen(junk)
    first.seen({"study_uid": "1.2.3.elsewhere", "seq": 40})
    first.seen({"study_uid": STUDY, "seq": 1})
    second.seen({"study_uid": STUDY, "seq": 3})
    assert (await second.append(STUDY, "chat.message", None, {"n": 4}))["seq"] == 5
    stored = [doc["seq"] async for doc in store[OPS].find({"study_uid": STUDY}).sort("seq", 1)]
    assert stored == [1, 2, 3, 4, 5]


async def test_the_rooms_core_follows_the_ops_other_nodes_broadcast(store: Store) -> None:
    """The core listens to ``room.op`` from other nodes on its channel: after hearing one, its
    next op in that room takes the following seq without a lost claim."""
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "a", SUPPORT_STUDY, None)
    await rooms.chat_send(alice, "a", {"study_uid": SUPPORT_STUDY, "text": "one"})
    other_node = RoomLog(store)
    heard = await other_node.append(SUPPORT_STUDY, "chat.message", None, {"text": "two"})
    for listener in channel.remote["room.op"]:
        listener(heard)
    await rooms.chat_send(alice, "a", {"study_uid": SUPPORT_STUDY, "text": "three"})
    assert rooms.log.lost_claims == 0
    _, ops = await rooms.log.since(SUPPORT_STUDY, 0)
    assert [(op["seq"], op["data"]["text"]) for op in ops or []] == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
    ]

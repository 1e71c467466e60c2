"""The presenter of a room is read from the store at most once per TTL; local changes at once."""

from __future__ import annotations

from server.rooms.presenters import Presenters
from server.rooms.service import ROOMS
from server.store.database import Store

STUDY = "1.2.826.0.1.3680043.10.88"
ALICE = {"user_id": "a", "username": "alice"}
BOB = {"user_id": "b", "username": "bob"}


async def test_another_nodes_change_is_seen_after_the_ttl_and_a_local_one_at_once(
    store: Store,
) -> None:
    now = [100.0]
    presenters = Presenters(store[ROOMS], clock=lambda: now[0], ttl_s=1.0)
    assert await presenters.of(STUDY) is None
    # Another node starts presenting: written to the store, not through this cache.
    await store[ROOMS].update_one({"_id": STUDY}, {"$set": {"presenter": ALICE}}, upsert=True)
    now[0] += 0.5
    assert await presenters.of(STUDY) is None
    now[0] += 0.6
    assert await presenters.of(STUDY) == ALICE
    presenters.changed(STUDY, BOB)  # a change through this node's broadcast
    assert await presenters.of(STUDY) == BOB

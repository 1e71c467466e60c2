"""The per-room operation log: a sequence number per room and every persisted change in order.

The sequence is a counter document per room bumped with ``$inc`` (atomic on every node, and the
fastest write the embedded store has). An op is stored before it is broadcast, so anything a
client was sent can be replayed to it after a reconnect. Two writers may store seq 6 before seq 5
lands; a client that sees a gap asks ``room.sync`` and the replay fills it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import ReturnDocument

from server.store.database import Document, IndexSpec, Store

COUNTERS = "room_counters"
OPS = "room_ops"
INDEXES = [IndexSpec(OPS, [("room", 1), ("seq", 1)], unique=True)]

# More missed ops than this and a fresh snapshot is cheaper to send (and to apply) than a replay.
REPLAY_LIMIT = 500

Clock = Callable[[], float]


def study_room(study_uid: str) -> str:
    return f"study:{study_uid}"


def worklist_room(facility: str) -> str:
    return f"worklist:{facility}"


class Sequences:
    """Named counters by ``_id``; shared by the room log and the report update log."""

    def __init__(self, store: Store) -> None:
        self._counters = store[COUNTERS]

    async def next(self, name: str) -> int:
        doc = await self._counters.find_one_and_update(
            {"_id": name}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["seq"]) if doc else 0

    async def current(self, name: str) -> int:
        doc = await self._counters.find_one({"_id": name})
        return int(doc["seq"]) if doc else 0


class RoomLog:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self._ops = store[OPS]
        self.sequences = Sequences(store)
        self._clock = clock
        self.replay_limit = REPLAY_LIMIT

    async def append(
        self, study_uid: str, op_type: str, actor: dict[str, str] | None, data: dict[str, Any]
    ) -> Document:
        room = study_room(study_uid)
        seq = await self.sequences.next(room)
        op: Document = {
            "room": room,
            "study_uid": study_uid,
            "seq": seq,
            "type": op_type,
            "actor": actor,
            "at": self._clock(),
            "data": data,
        }
        await self._ops.insert_one(op)
        return public_op(op)

    async def current(self, study_uid: str) -> int:
        return await self.sequences.current(study_room(study_uid))

    async def since(self, study_uid: str, seq: int) -> tuple[int, list[Document] | None]:
        """The current seq and the ops after ``seq``, or None when a snapshot is due instead."""
        current = await self.current(study_uid)
        if seq > current or current - seq > self.replay_limit:
            return current, None
        cursor = self._ops.find({"room": study_room(study_uid), "seq": {"$gt": seq}}).sort("seq", 1)
        ops = [public_op(op) async for op in cursor]
        return current, ops


def public_op(op: Document) -> Document:
    return {key: op[key] for key in ("study_uid", "seq", "type", "actor", "at", "data")}

"""The per-room operation log: a sequence number per room and every persisted change in order.

An op's sequence number is claimed by inserting it: the unique ``(room, seq)`` index lets exactly
one writer, on any node, store seq N. Each node remembers the last seq it saw per room and tries
the next; a duplicate key (another node got there first) tries the seq after it, and a second one
rereads the room's highest seq. So an op costs one insert, batched with the other ops in flight,
instead of a counter ``$inc`` plus an insert. An op is stored before it is broadcast, so anything
a client was sent can be replayed to it after a reconnect. Two writers may store seq 6 before
seq 5 lands; a client that sees a gap asks ``room.sync`` and the replay fills it.

With several nodes in one room, a node's last seq goes stale whenever another node appends, and
its next claim would lose (a refused insert, a reread, another insert). So each node also hears
the ops the other nodes broadcast (``seen``) and starts its next claim past them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from server.http.errors import ApiError
from server.rooms.batched import InsertBatcher
from server.store.database import Document, IndexSpec, Store

COUNTERS = "room_counters"
OPS = "room_ops"
INDEXES = [IndexSpec(OPS, [("room", 1), ("seq", 1)], unique=True)]

# More missed ops than this and a fresh snapshot is cheaper to send (and to apply) than a replay.
REPLAY_LIMIT = 500
# Claims lost to other nodes before an append gives up (each loss rereads the room's last seq).
CLAIM_TRIES = 50

Clock = Callable[[], float]


def study_room(study_uid: str) -> str:
    return f"study:{study_uid}"


def worklist_room(facility: str) -> str:
    return f"worklist:{facility}"


class Sequences:
    """Named counters by ``_id`` (the report update log numbers its updates with them)."""

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


class SequencedLog:
    """Entries numbered 1, 2, ... per ``room`` key in one collection with a unique (room, seq)
    index; the number is claimed by the insert itself (see the module docstring)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._entries = collection
        self._writer = InsertBatcher(collection)
        self._last: dict[str, int] = {}
        self.lost_claims = 0

    async def append(self, room: str, entry: Document) -> Document:
        """Store ``entry`` under the room's next seq; returns it with ``room`` and ``seq`` set."""
        for attempt in range(CLAIM_TRIES):
            seq = await self._claim(room)
            claimed: Document = {**entry, "room": room, "seq": seq}
            try:
                await self._writer.insert(claimed)
            except DuplicateKeyError:
                self.lost_claims += 1
                if attempt == 0:
                    # Most often the other node took just that one (its broadcast is on the way).
                    self.seen(room, seq)
                else:
                    self._last.pop(room, None)  # further behind than that: reread
                continue
            return claimed
        raise ApiError("conflict", "Too busy to record this change; try again.")

    def seen(self, room: str, seq: int) -> None:
        """Another node stored ``seq`` in ``room``: a later claim here starts past it. Only rooms
        this node writes to are followed; the others are read on their first claim."""
        if seq > self._last.get(room, seq):
            self._last[room] = seq

    async def _claim(self, room: str) -> int:
        """The next seq to try: one past the highest this node knows of, read once per room."""
        if room not in self._last:
            stored = await self.current(room)
            self._last[room] = max(stored, self._last.get(room, 0))
        self._last[room] += 1
        return self._last[room]

    async def current(self, room: str) -> int:
        doc = await self._entries.find_one({"room": room}, {"seq": 1}, sort=[("seq", -1)])
        return int(doc["seq"]) if doc else 0

    async def after(self, room: str, seq: int, limit: int) -> list[Document]:
        """Up to ``limit`` entries after ``seq``, oldest first."""
        cursor = self._entries.find({"room": room, "seq": {"$gt": seq}}).sort("seq", 1)
        return [entry async for entry in cursor.limit(limit)]


class RoomLog:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self._log = SequencedLog(store[OPS])
        self._clock = clock
        self.replay_limit = REPLAY_LIMIT

    async def append(
        self,
        study_uid: str,
        op_type: str,
        actor: dict[str, str] | None,
        data: dict[str, Any],
        stored: Document | None = None,
    ) -> Document:
        """``stored``: fields kept in the op's document but never sent (an annotation change's
        history entry), written by the same insert."""
        op = await self._log.append(
            study_room(study_uid),
            {
                **(stored or {}),
                "study_uid": study_uid,
                "type": op_type,
                "actor": actor,
                "at": self._clock(),
                "data": data,
            },
        )
        return public_op(op)

    def seen(self, op: Any) -> None:
        """An op another node broadcast (as received from it, so checked before use)."""
        if isinstance(op, dict):
            study_uid, seq = op.get("study_uid"), op.get("seq")
            if isinstance(study_uid, str) and isinstance(seq, int):
                self._log.seen(study_room(study_uid), seq)

    @property
    def lost_claims(self) -> int:
        return self._log.lost_claims

    async def current(self, study_uid: str) -> int:
        return await self._log.current(study_room(study_uid))

    async def since(self, study_uid: str, seq: int) -> tuple[int, list[Document] | None]:
        """The current seq and the ops after ``seq``, or None when a snapshot is due instead."""
        current = await self.current(study_uid)
        if seq > current or current - seq > self.replay_limit:
            return current, None
        ops = await self._log.after(study_room(study_uid), seq, self.replay_limit)
        return current, [public_op(op) for op in ops]


def public_op(op: Document) -> Document:
    return {key: op[key] for key in ("study_uid", "seq", "type", "actor", "at", "data")}

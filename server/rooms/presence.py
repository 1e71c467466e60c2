"""Who is in a study room and what each is looking at: volatile, batched, dropped under load.

Updates land in a per-room "dirty" map on this node and go out once per tick as one
``room.presence`` batch, so a reader moving the mouse at 60 Hz costs the room at most one
message per tick, and a newer state replaces an unsent older one instead of queueing behind it.

The participant list lives in the store (``room_members``) because a snapshot served by one node
must show readers connected to another. Each node refreshes ``seen`` on its members on a
heartbeat; members of a node that died stop being listed once their ``seen`` goes stale.
Viewports reach the store at most once a second per member; cursors never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from server.rooms.channel import Channel
from server.rooms.oplog import Clock, study_room
from server.store.database import Document, IndexSpec, Store

log = logging.getLogger(__name__)

MEMBERS = "room_members"
INDEXES = [IndexSpec(MEMBERS, [("study_uid", 1), ("seen", -1)]), IndexSpec(MEMBERS, [("node", 1)])]

TICK_S = 0.05
HEARTBEAT_S = 10.0
STALE_AFTER_S = 3 * HEARTBEAT_S
VIEWPORT_PERSIST_S = 1.0
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
    "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff",
)  # fmt: skip


def colour_for(user_id: str) -> str:
    digest = hashlib.sha256(user_id.encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


@dataclass
class Member:
    sid: str
    study_uid: str
    user_id: str
    username: str
    display_name: str
    role: str
    colour: str
    viewport: dict[str, Any] | None = None
    cursor: dict[str, Any] | None = None
    following: bool = True
    typing: bool = False
    persisted_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "user_id": self.user_id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "colour": self.colour,
            "viewport": self.viewport,
            "cursor": self.cursor,
            "following": self.following,
            "typing": self.typing,
        }

    def actor(self) -> dict[str, str]:
        return {"user_id": self.user_id, "username": self.username}


@dataclass
class _Batch:
    members: dict[str, Member] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)


class Presence:
    def __init__(
        self,
        store: Store,
        channel: Channel,
        node_id: str,
        clock: Clock = time.time,
        tick_s: float = TICK_S,
    ) -> None:
        self._members = store[MEMBERS]
        self._channel = channel
        self.node_id = node_id
        self._clock = clock
        self.tick_s = tick_s
        self.local: dict[tuple[str, str], Member] = {}
        self._dirty: dict[str, _Batch] = {}
        self._owed: set[tuple[str, str]] = set()
        self.dropped = 0

    def member(self, sid: str, study_uid: str) -> Member | None:
        return self.local.get((sid, study_uid))

    def local_members(self, study_uid: str) -> list[Member]:
        return [m for (_, uid), m in self.local.items() if uid == study_uid]

    async def join(self, member: Member) -> None:
        self.local[(member.sid, member.study_uid)] = member
        # update_one, not replace_one: nx-27017 ignores upsert on replace_one.
        await self._members.update_one(
            {"_id": _member_id(member.sid, member.study_uid)},
            {"$set": {**_doc(member), "node": self.node_id, "seen": self._clock()}},
            upsert=True,
        )
        self._batch(member.study_uid).members[member.sid] = member

    async def leave(self, sid: str, study_uid: str) -> Member | None:
        member = self.local.pop((sid, study_uid), None)
        await self._members.delete_one({"_id": _member_id(sid, study_uid)})
        batch = self._batch(study_uid)
        batch.members.pop(sid, None)
        batch.left.add(sid)
        return member

    async def leave_all(self, sid: str) -> list[Member]:
        left = []
        for key in [key for key in self.local if key[0] == sid]:
            member = await self.leave(*key)
            if member is not None:
                left.append(member)
        return left

    def update(
        self,
        member: Member,
        *,
        viewport: dict[str, Any] | None = None,
        cursor: dict[str, Any] | bool | None = False,
        typing: bool | None = None,
        following: bool | None = None,
    ) -> None:
        """Change a local member's volatile state; it goes out with the next tick."""
        if viewport is not None:
            member.viewport = viewport
            self._owed.add((member.sid, member.study_uid))
        if cursor is not False:
            member.cursor = cursor if isinstance(cursor, dict) else None
        if typing is not None:
            member.typing = typing
        if following is not None:
            member.following = following
            self._owed.add((member.sid, member.study_uid))
        batch = self._batch(member.study_uid)
        if member.sid in batch.members:
            self.dropped += 1
        batch.members[member.sid] = member

    async def participants(self, study_uid: str) -> list[dict[str, Any]]:
        fresh = self._clock() - STALE_AFTER_S
        cursor = self._members.find({"study_uid": study_uid, "seen": {"$gte": fresh}})
        out = []
        async for doc in cursor:
            local = self.local.get((doc["sid"], study_uid))
            out.append(local.public() if local else _public(doc))
        return out

    async def flush(self) -> None:
        """One tick: emit each room's batch, then write the viewports that are due."""
        batches, self._dirty = self._dirty, {}
        for study_uid, batch in batches.items():
            payload = {
                "study_uid": study_uid,
                "members": [m.public() for m in batch.members.values()],
                "left": sorted(batch.left),
            }
            await self._channel.send("room.presence", payload, room=study_room(study_uid))
        now = self._clock()
        for key in list(self._owed):
            member = self.local.get(key)
            if member is None:
                self._owed.discard(key)
            elif now - member.persisted_at >= VIEWPORT_PERSIST_S:
                self._owed.discard(key)
                await self._persist_viewport(member, now)

    async def _persist_viewport(self, member: Member, now: float) -> None:
        member.persisted_at = now
        await self._members.update_one(
            {"_id": _member_id(member.sid, member.study_uid)},
            {"$set": {"viewport": member.viewport, "following": member.following, "seen": now}},
        )

    async def heartbeat(self) -> None:
        await self._members.update_many({"node": self.node_id}, {"$set": {"seen": self._clock()}})

    async def forget_node(self) -> None:
        await self._members.delete_many({"node": self.node_id})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await self.forget_node()
            except PyMongoError:
                # Shutting down without a store: these stop being listed once their heartbeat
                # (``seen``) goes stale, as for a node that died.
                log.warning("could not remove this node's presence entries at shutdown")

    async def _run(self) -> None:
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.flush()
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    last_beat = time.monotonic()
                    await self.heartbeat()
            except Exception:
                log.exception("presence tick failed")

    def _batch(self, study_uid: str) -> _Batch:
        return self._dirty.setdefault(study_uid, _Batch())


def _member_id(sid: str, study_uid: str) -> str:
    return f"{sid}|{study_uid}"


def _doc(member: Member) -> Document:
    return {
        "sid": member.sid,
        "study_uid": member.study_uid,
        "user_id": member.user_id,
        "username": member.username,
        "display_name": member.display_name,
        "role": member.role,
        "colour": member.colour,
        "viewport": member.viewport,
        "following": member.following,
    }


def _public(doc: Document) -> dict[str, Any]:
    return {
        "sid": doc["sid"],
        "user_id": doc["user_id"],
        "username": doc["username"],
        "display_name": doc["display_name"],
        "role": doc["role"],
        "colour": doc["colour"],
        "viewport": doc.get("viewport"),
        "cursor": None,
        "following": bool(doc.get("following", True)),
        "typing": False,
    }

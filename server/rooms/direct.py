"""Each user's direct-message stream, sequenced like a study room's ops.

Every direct message (new, edited or deleted) is stored once per participant under that user's
next sequence number before it is sent to their private room, so a client that reconnects asks
for what came after the last number it saw, exactly as ``room.sync`` does for a study room.
Numbers are per user (not per conversation): one question after a reconnect covers every
conversation. A client too far behind gets the newest entries and ``complete: false``, and pages
older messages with ``chat.history``.
"""

from __future__ import annotations

import time
from typing import Any

from server.rooms.oplog import Clock, SequencedLog
from server.store.database import Document, IndexSpec, Store

INBOX = "direct_inbox"
INDEXES = [IndexSpec(INBOX, [("room", 1), ("seq", 1)], unique=True)]
REPLAY_LIMIT = 200


def inbox_of(user_id: str) -> str:
    return f"dm:{user_id}"


class DirectInbox:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self._log = SequencedLog(store[INBOX])
        self._clock = clock
        self.replay_limit = REPLAY_LIMIT

    async def append(self, user_id: str, message: Document) -> Document:
        """Store ``message`` in the user's stream; what to send them, carrying its seq."""
        entry = await self._log.append(inbox_of(user_id), {"message": message, "at": self._clock()})
        return {**message, "seq": entry["seq"]}

    async def since(self, user_id: str, seq: int) -> dict[str, Any]:
        room = inbox_of(user_id)
        current = await self._log.current(room)
        start = max(seq, current - self.replay_limit)
        entries = await self._log.after(room, start, self.replay_limit) if start < current else []
        return {
            "seq": current,
            "messages": [{**entry["message"], "seq": entry["seq"]} for entry in entries],
            "complete": start == seq or seq >= current,
        }

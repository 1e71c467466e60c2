"""Who presents in each study room, read from the store at most once a second per room.

Every viewport a reader sends asks "is this the presenter?"; at 30 frames a second that question
must not cost a store round trip each time. Changes made on this node update the cache at once
(they pass through ``Rooms.broadcast``); a change made on another node is seen here within
``TTL_S``, the same bound the store-backed participant list already has for viewports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from server.store.database import Document

TTL_S = 1.0
MAX_ROOMS = 4096


@dataclass
class Presenters:
    rooms: AsyncCollection[Document]
    clock: Callable[[], float] = time.monotonic
    ttl_s: float = TTL_S
    _known: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    async def of(self, study_uid: str) -> dict[str, Any] | None:
        known = self._known.get(study_uid)
        if known is not None and self.clock() - known[0] < self.ttl_s:
            return known[1]
        room = await self.rooms.find_one({"_id": study_uid}, {"presenter": 1})
        presenter = room.get("presenter") if room else None
        self.changed(study_uid, presenter)
        return presenter

    def changed(self, study_uid: str, presenter: dict[str, Any] | None) -> None:
        if len(self._known) >= MAX_ROOMS and study_uid not in self._known:
            self._known.clear()  # bounded: rooms idle for long are simply read again
        self._known[study_uid] = (self.clock(), presenter)

"""Recent QIDO-RS answers, kept until the archive changes.

Viewers and worklists poll the same searches over and over; the embedded store needs tens of
milliseconds to read a few hundred records. Answers are cached per exact search and dropped as
soon as the hub reports a change to the archive (a new instance, an MPPS update). Events from
gateway worker processes reach this hub a moment after their commit, and another server node's
changes never reach it, so an answer also expires after ``TTL_S`` seconds: that bounds how stale
a search can be.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from server.hub import DomainEvent, EventHub

Key = tuple[object, ...]
MAX_ENTRIES = 256
TTL_S = 2.0
CHANGES = ("dicom.instance.stored", "dicom.mpps.updated")


class QidoCache:
    def __init__(self, hub: EventHub, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Key, tuple[float, list[str]]] = OrderedDict()
        self._max = max_entries
        self.generation = 0
        self._unsubscribe = [hub.subscribe(topic, self._changed) for topic in CHANGES]

    async def _changed(self, event: DomainEvent) -> None:
        if event.topic == "dicom.instance.stored" and event.data.get("duplicate"):
            return
        self.generation += 1
        self._entries.clear()

    async def get(self, key: Key, compute: Callable[[], Awaitable[list[str]]]) -> list[str]:
        cached = self._entries.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < TTL_S:
            self._entries.move_to_end(key)
            return cached[1]
        generation = self.generation
        answer = await compute()
        if generation == self.generation:
            self._entries[key] = (now, answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return answer

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

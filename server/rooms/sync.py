"""Synchronised scrolling: links between two series of a study, and where a scroll leads.

A link is room state: stored here, announced as a sequenced op, listed in the snapshot. When a
member's viewport shows a slice of a linked series, ``targets`` names the slice of the other
series nearest in patient position. Viewports arrive at up to 30 a second, so each study's links
are read from the store at most once per ``TTL_S`` (changes through this node at once).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.http.errors import ApiError
from server.rooms.slices import Slice, SliceSource, nearest
from server.store.database import Document, IndexSpec, Store

LINKS = "room_sync_links"
INDEXES = [IndexSpec(LINKS, [("study_uid", 1)])]
TTL_S = 1.0
MAX_LINKS = 16
MAX_STUDIES = 4096


@dataclass(frozen=True)
class Target:
    link_id: str
    source: Slice
    target: Slice
    target_series: str
    distance_mm: float


class SyncLinks:
    def __init__(
        self,
        store: Store,
        slices: SliceSource,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._links = store[LINKS]
        self.slices = slices
        self._clock = clock
        self._monotonic = monotonic
        self._known: dict[str, tuple[float, list[Document]]] = {}

    async def link(self, study_uid: str, series: list[str], by: dict[str, str]) -> Document:
        current = await self.for_study(study_uid)
        if any(sorted(link["series"]) == sorted(series) for link in current):
            raise ApiError("conflict", "Those two series are already linked.")
        if len(current) >= MAX_LINKS:
            raise ApiError("conflict", f"A study room holds at most {MAX_LINKS} links.")
        for series_uid in series:
            await self.slices.series(study_uid, series_uid)  # not_found without positions
        link: Document = {
            "_id": uuid.uuid4().hex,
            "study_uid": study_uid,
            "series": list(series),
            "by": by,
            "at": self._clock(),
        }
        await self._links.insert_one(link)
        self._known.pop(study_uid, None)
        return public(link)

    async def unlink(self, study_uid: str, link_id: str) -> Document:
        link = await self._links.find_one_and_delete({"_id": link_id, "study_uid": study_uid})
        self._known.pop(study_uid, None)
        if link is None:
            raise ApiError("not_found", "No such link in this study.")
        return public(link)

    async def for_study(self, study_uid: str) -> list[Document]:
        return [public(doc) async for doc in self._links.find({"study_uid": study_uid})]

    async def targets(self, study_uid: str, viewport: dict[str, Any]) -> list[Target]:
        """For a viewport on a linked series: the nearest slice of each series linked to it."""
        series_uid = viewport.get("series_uid")
        instance_uid = viewport.get("instance_uid")
        if series_uid is None or instance_uid is None:
            return []
        links = [link for link in await self._cached(study_uid) if series_uid in link["series"]]
        out = []
        for link in links:
            frame = int(viewport.get("frame", 0))
            shown = await self.slices.series(study_uid, series_uid)
            source = next(
                (s for s in shown if s.instance_uid == instance_uid and s.frame == frame), None
            )
            if source is None:
                continue  # that image has no position: nothing to match
            other = next(uid for uid in link["series"] if uid != series_uid)
            target, distance = nearest(source, await self.slices.series(study_uid, other))
            out.append(Target(link["id"], source, target, other, distance))
        return out

    async def _cached(self, study_uid: str) -> list[Document]:
        known = self._known.get(study_uid)
        if known is not None and self._monotonic() - known[0] < TTL_S:
            return known[1]
        links = await self.for_study(study_uid)
        if len(self._known) >= MAX_STUDIES:
            self._known.clear()
        self._known[study_uid] = (self._monotonic(), links)
        return links


def public(doc: Document) -> Document:
    return {
        "id": doc["_id"],
        "study_uid": doc["study_uid"],
        "series": list(doc["series"]),
        "by": doc["by"],
        "at": doc["at"],
    }

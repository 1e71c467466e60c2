"""Reading the archive back: the bytes of an instance and the instances of a series.

The render engine depends only on the two coroutines of ``Archive`` (``instance_bytes`` and
``series_instance_uids``), reached through ``app[ARCHIVE]``; DICOMweb and the Q/R SCPs use the
rest. Facility scoping is the caller's choice: ``facility=None`` means every facility.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import NamedTuple

from aiohttp import web
from pymongo.errors import DuplicateKeyError

from server.dicom.index import INSTANCES, METADATA, SERIES, STUDIES, in_flight, metadata_doc
from server.dicom.parse import Rejected, prepare
from server.store.blobs import BlobNotFound, BlobStore
from server.store.database import Document, Store

log = logging.getLogger(__name__)


def _scope(query: Document, facility: str | None) -> Document:
    return query if facility is None else {**query, "facility": facility}


LOCATIONS_BYTES = 32 << 20
LOCATION_OVERHEAD_BYTES = 240

# The index writer inserts an entry while its file is still being flushed (``IndexWriter``), so
# a reader that finds the file short or missing waits this long for a young entry before it
# gives up on the instance; an old entry in that state was left by a crash and is unreadable.
INCOMPLETE_WAIT_S = 2.0
INCOMPLETE_POLL_S = 0.02


class Location(NamedTuple):
    blob: str
    facility: str
    size: int | None


class Locations:
    """Where each instance's bytes are (blob key and facility), bounded in bytes, LRU.

    An index document is rewritten only to repair an entry whose file a crash left incomplete,
    so its blob key stays right for as long as the blob is whole; a blob that has gone or is
    short makes the reader drop the entry and ask the store again. Reading a stored
    instance then costs one blob read instead of a store query plus a blob read.
    """

    def __init__(self, max_bytes: int = LOCATIONS_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[str, tuple[Location, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sop_instance_uid: str) -> Location | None:
        item = self._items.get(sop_instance_uid)
        if item is None:
            return None
        self._items.move_to_end(sop_instance_uid)
        return item[0]

    def remember(self, doc: Document) -> None:
        uid, blob, facility = doc.get("_id"), doc.get("blob"), doc.get("facility")
        if not (isinstance(uid, str) and isinstance(blob, str) and isinstance(facility, str)):
            return
        self.forget(uid)
        size = doc.get("size")
        location = Location(blob, facility, size if isinstance(size, int) else None)
        entry = LOCATION_OVERHEAD_BYTES + len(uid) + len(blob) + len(facility)
        self._items[uid] = (location, entry)
        self.nbytes += entry
        while self.nbytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.nbytes -= evicted

    def forget(self, sop_instance_uid: str) -> None:
        item = self._items.pop(sop_instance_uid, None)
        if item is not None:
            self.nbytes -= item[1]


class Archive:
    def __init__(
        self, store: Store, blobs: BlobStore, locations_bytes: int = LOCATIONS_BYTES
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.locations = Locations(locations_bytes)

    async def instance(self, sop_instance_uid: str, facility: str | None = None) -> Document:
        doc = await self._store[INSTANCES].find_one(
            _scope({"_id": sop_instance_uid}, facility), None
        )
        if doc is None:
            raise KeyError(sop_instance_uid)
        self.locations.remember(doc)
        return doc

    async def instance_bytes(self, sop_instance_uid: str, facility: str | None = None) -> bytes:
        """The object exactly as received (Part 10 file); KeyError if unknown (or out of
        `facility`) or if its file is not whole."""
        known = self.locations.get(sop_instance_uid)
        if known is not None:
            if facility not in (None, known.facility):
                raise KeyError(sop_instance_uid)
            data = await self._whole(known.blob, known.size)
            if data is not None:
                return data
            self.locations.forget(sop_instance_uid)
        until = time.monotonic() + INCOMPLETE_WAIT_S
        while True:
            doc = await self.instance(sop_instance_uid, facility)
            data = await self._whole(doc.get("blob"), doc.get("size"))
            if data is not None:
                return data
            self.locations.forget(sop_instance_uid)
            if not in_flight(doc, time.time()) or time.monotonic() >= until:
                log.warning("the stored file of %s is missing or incomplete", sop_instance_uid)
                raise KeyError(sop_instance_uid)
            await asyncio.sleep(INCOMPLETE_POLL_S)

    async def _whole(self, blob: object, size: object) -> bytes | None:
        """The blob's bytes if they are all there (its index records their count)."""
        if not isinstance(blob, str):
            return None
        try:
            data = await self._blobs.get(blob)
        except BlobNotFound:
            return None
        return data if not isinstance(size, int) or len(data) == size else None

    async def series_instance_uids(
        self, series_instance_uid: str, facility: str | None = None
    ) -> list[str]:
        """SOP Instance UIDs of a series sorted by InstanceNumber; KeyError if unknown."""
        docs = await self.instances_of(series_instance_uid=series_instance_uid, facility=facility)
        if not docs:
            raise KeyError(series_instance_uid)
        return [doc["_id"] for doc in docs]

    async def study_instance_uids(
        self, study_instance_uid: str, facility: str | None = None
    ) -> list[str]:
        """SOP Instance UIDs of a study, series by series; KeyError if unknown."""
        docs = await self.instances_of(study_instance_uid=study_instance_uid, facility=facility)
        if not docs:
            raise KeyError(study_instance_uid)
        docs.sort(key=lambda doc: str(doc.get("series_uid", "")))
        return [doc["_id"] for doc in docs]

    async def instances_of(
        self,
        *,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
        facility: str | None = None,
    ) -> list[Document]:
        query = _uid_query(study_instance_uid, series_instance_uid)
        if not query:
            raise ValueError("name a study or a series")
        docs = [doc async for doc in self._store[INSTANCES].find(_scope(query, facility), None)]
        docs.sort(key=_instance_order)
        for doc in docs:
            self.locations.remember(doc)
        return docs

    async def metadata(
        self,
        *,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
        sop_instance_uid: str | None = None,
        facility: str | None = None,
    ) -> list[Document]:
        """Metadata documents (``json`` is a DICOM JSON string) in instance order.

        The index writer writes them within half a second of answering the sender, so an
        instance may be indexed without one for a moment, or for good if the node died in
        between: those are rebuilt here from the stored file. Only indexed instances are
        answered.
        """
        query = _scope(
            _uid_query(study_instance_uid, series_instance_uid, sop_instance_uid), facility
        )
        instances = [doc async for doc in self._store[INSTANCES].find(query, {"facility": 1})]
        indexed = {doc["_id"] for doc in instances}
        docs = [doc async for doc in self._store[METADATA].find(query) if doc["_id"] in indexed]
        found = {doc["_id"] for doc in docs}
        for instance in instances:
            if instance["_id"] not in found:
                rebuilt = await self._rebuild_metadata(instance)
                if rebuilt is not None:
                    docs.append(rebuilt)
        docs.sort(key=_instance_order)
        return docs

    async def _rebuild_metadata(self, instance: Document) -> Document | None:
        try:
            raw = await self.instance_bytes(str(instance["_id"]), str(instance["facility"]))
            prepared = await asyncio.to_thread(prepare, raw, None)
        except (KeyError, Rejected) as exc:
            log.warning("no metadata for %s: %s", instance["_id"], exc)
            return None
        doc = metadata_doc(prepared, str(instance["facility"]))
        with contextlib.suppress(DuplicateKeyError):
            await self._store[METADATA].insert_one(dict(doc))
        return doc

    async def study(self, study_instance_uid: str, facility: str | None = None) -> Document | None:
        return await self._store[STUDIES].find_one(_scope({"_id": study_instance_uid}, facility))

    async def series(
        self, series_instance_uid: str, facility: str | None = None
    ) -> Document | None:
        return await self._store[SERIES].find_one(_scope({"_id": series_instance_uid}, facility))


def _uid_query(study: str | None, series: str | None, sop: str | None = None) -> Document:
    """The index documents of instances carry their study and series UIDs; the SOP UID is _id."""
    named = {"study_uid": study, "series_uid": series, "_id": sop}
    return {field: uid for field, uid in named.items() if uid is not None}


def _instance_order(doc: Document) -> tuple[int, str]:
    number = doc.get("instance_number")
    return (number if isinstance(number, int) else 1 << 31, str(doc["_id"]))


ARCHIVE = web.AppKey("archive", Archive)

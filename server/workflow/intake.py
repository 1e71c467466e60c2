"""What the DICOM gateway tells the workflow: images stored, a study gone quiet, MPPS progress.

The gateway (``server/dicom/ingest.py``, ``server/dicom/mpps.py``) publishes:

    dicom.instance.stored  {study_instance_uid, sop_instance_uid, modality, duplicate, ...}
    dicom.study.stable     {study_instance_uid, received, quiet_s}
    dicom.mpps.updated     {mpps_uid, status, study_instance_uids: [...], accession_numbers: [...]}

with ``event.facility`` set. Images carry no accession number in the event, so for a study UID
the worklist does not know yet, the study's patient and accession values are read from the
archive index (``dicom_studies``, written before the event is published) and the row is matched
by accession number (the modality ignored the worklist's UID) or created as unscheduled.
A malformed event is logged and dropped: nothing is written for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from server.auth.users import DEFAULT_FACILITY
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub, Unsubscribe
from server.store.database import Document, Store
from server.workflow import events
from server.workflow.status import SYSTEM, Priority, Status, allowed
from server.workflow.studies import NewStudy, Studies

log = logging.getLogger(__name__)

ARCHIVE_STUDIES = "dicom_studies"
NOT_IMAGES = frozenset({"SR", "PR", "KO", "SEG", "REG", "RWV", "DOC"})
MPPS_STATES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
_SETTLED_ROWS_KEPT = 4096
COUNT_DELAY_S = 0.25
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ACCESSION = re.compile(r"^[^\\\x00-\x1f]{1,16}$")


class MalformedEvent(ValueError):
    """A gateway event lacks what the workflow needs; it is dropped, nothing is written."""


def check_uid(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _UID.match(value):
        raise MalformedEvent(f"{str(value)[:80]!r} is not a UID")
    return value


def _text(q: Mapping[str, Any], key: str, limit: int = 64) -> str | None:
    value = q.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("Alphabetic")
    if value is None:
        return None
    text = str(value).strip()[:limit]
    return text or None


class Intake:
    """Keeps the worklist in step with what the gateway stores.

    Images arrive by the hundred per study, so the row of a study already past ``scheduled`` is
    remembered (bounded, by study UID) and its further images are counted in memory and written
    as one ``$inc`` at most ``COUNT_DELAY_S`` later: a store round trip per image was a fifth of
    the server's work while ingesting. Everything that reads the count through the workflow
    (study stable, MPPS) writes the pending counts first.
    """

    def __init__(self, store: Store, studies: Studies) -> None:
        self._archive = store[ARCHIVE_STUDIES]
        self._studies = studies
        self._settled_rows: OrderedDict[str, str] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._count_writer: asyncio.Task[None] | None = None
        self._counts_lock = asyncio.Lock()

    def subscribe(self, hub: EventHub) -> list[Unsubscribe]:
        return [
            hub.subscribe(events.DICOM_INSTANCE_STORED, self._guard(self.instance_stored)),
            hub.subscribe(events.DICOM_STUDY_STABLE, self._guard(self.study_stable)),
            hub.subscribe(events.DICOM_MPPS_UPDATED, self._guard(self.mpps_updated)),
        ]

    def _guard(
        self, handler: Callable[[DomainEvent], Awaitable[None]]
    ) -> Callable[[DomainEvent], Awaitable[None]]:
        async def run(event: DomainEvent) -> None:
            try:
                await handler(event)
            except MalformedEvent as exc:
                log.warning("dropped %s event: %s", event.topic, exc)

        return run

    async def _row_for(self, uid: str, facility: str) -> Document:
        """The worklist row for images of ``uid``: by UID, by accession, or a new one."""
        doc = await self._studies.by_study_uid(uid)
        if doc is not None:
            return doc
        indexed = await self._archive.find_one({"_id": uid})
        q: Mapping[str, Any] = (indexed or {}).get("q") or {}
        accession = _text(q, "AccessionNumber", 16)
        if accession is not None and not _ACCESSION.match(accession):
            accession = None
        if accession:
            doc = await self._studies.by_accession(accession)
            if doc is not None and doc["facility"] == facility:
                # The modality ignored the worklist's UID: the images' UID is the truth.
                try:
                    return await self._studies.update_fields(
                        doc,
                        {"study_instance_uid": uid},
                        actor=SYSTEM,
                        action="study.uid",
                        retry=True,
                    )
                except DuplicateKeyError:
                    log.warning("study %s: UID %s belongs to another row", doc["_id"], uid)
                    return doc
                except ApiError:
                    return await self._studies.get(doc["_id"])
        new = NewStudy(
            facility=facility,
            accession_number=accession if accession and doc is None else None,
            study_instance_uid=uid,
            patient_id=_text(q, "PatientID") or "",
            patient_name=_text(q, "PatientName") or "",
            patient_birth_date=_text(q, "PatientBirthDate", 8),
            patient_sex=_text(q, "PatientSex", 1),
            modality=_text(q, "Modality", 16) or _first(indexed, "modalities"),
            referring_physician=None,
            priority=Priority.ROUTINE,
            status=Status.ARRIVED,
            unscheduled=True,
        )
        try:
            return await self._studies.create(new, SYSTEM)
        except ApiError as exc:
            # Another association created the row for this study a moment ago.
            again = await self._studies.by_study_uid(uid)
            if exc.code == "conflict" and again is not None:
                return again
            raise

    async def _advance(self, doc: Document, target: Status, reason: str) -> Document:
        if not allowed(Status(doc["status"]), target, SYSTEM):
            return doc
        try:
            return await self._studies.transition(
                doc["_id"], target, actor_role=SYSTEM, actor_name=SYSTEM, reason=reason
            )
        except ApiError as exc:
            # Somebody moved the study meanwhile (a technician, another event): theirs stands.
            if exc.code not in ("invalid_transition", "forbidden", "stale_version"):
                raise
        return doc

    async def instance_stored(self, event: DomainEvent) -> None:
        uid = check_uid(event.data.get("study_instance_uid"))
        if event.data.get("duplicate") is True or event.data.get("modality") in NOT_IMAGES:
            # Reports, presentation states and AI results are not images to read: they neither
            # count nor open a worklist row of their own.
            return
        row_id = self._settled_rows.get(uid)
        if row_id is not None:
            self._settled_rows.move_to_end(uid)
            self._counts[row_id] = self._counts.get(row_id, 0) + 1
            if self._count_writer is None:
                self._count_writer = asyncio.get_running_loop().create_task(
                    self._write_counts_soon(), name="workflow-image-counts"
                )
            return
        doc = await self._row_for(uid, event.facility or DEFAULT_FACILITY)
        await self._studies.collection.update_one({"_id": doc["_id"]}, {"$inc": {"images": 1}})
        if doc["status"] == Status.SCHEDULED.value:
            doc = await self._advance(doc, Status.ARRIVED, "images arrived")
        if doc["status"] != Status.SCHEDULED.value:
            # A study never goes back to scheduled, so later images only need counting.
            self._settled_rows[uid] = doc["_id"]
            if len(self._settled_rows) > _SETTLED_ROWS_KEPT:
                self._settled_rows.popitem(last=False)

    async def _write_counts_soon(self) -> None:
        try:
            await asyncio.sleep(COUNT_DELAY_S)
            await self.write_counts()
        finally:
            self._count_writer = None

    async def write_counts(self) -> None:
        """Write the image counts gathered so far; a failed write keeps its count for the next.

        One writer at a time: a caller that finds a write in flight waits for it, so once this
        returns every count gathered before the call is in the store.
        """
        async with self._counts_lock:
            await self._write_pending_counts()

    async def _write_pending_counts(self) -> None:
        while self._counts:
            row_id, count = self._counts.popitem()
            try:
                counted = await self._studies.collection.update_one(
                    {"_id": row_id}, {"$inc": {"images": count}}
                )
            except PyMongoError as exc:
                self._counts[row_id] = self._counts.get(row_id, 0) + count
                log.warning("image counts not written yet: %s", exc)
                return
            if counted.matched_count == 0:
                # The row is gone: its study UID must be looked up afresh next time.
                for uid in [u for u, r in self._settled_rows.items() if r == row_id]:
                    del self._settled_rows[uid]

    async def close(self) -> None:
        """Write what is pending before the process stops."""
        if self._count_writer is not None:
            self._count_writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._count_writer
        await self.write_counts()

    async def study_stable(self, event: DomainEvent) -> None:
        await self.write_counts()
        uid = check_uid(event.data.get("study_instance_uid"))
        doc = await self._row_for(uid, event.facility or DEFAULT_FACILITY)
        if doc["status"] in (Status.SCHEDULED.value, Status.ARRIVED.value):
            await self._advance(doc, Status.UNREAD, "study complete")

    async def mpps_updated(self, event: DomainEvent) -> None:
        await self.write_counts()
        data = event.data
        status = str(data.get("status") or "").upper()
        if status not in MPPS_STATES:
            raise MalformedEvent(f"MPPS status {status[:20]!r} is not one of {MPPS_STATES}")
        uids = [check_uid(u) for u in _list(data, "study_instance_uids")]
        accessions = [str(a)[:16] for a in _list(data, "accession_numbers") if a]
        if not uids and not accessions:
            raise MalformedEvent("MPPS event names neither a study nor an accession number")
        rows: dict[str, Document] = {}
        for accession in accessions:
            doc = await self._studies.by_accession(accession)
            if doc is not None:
                rows[doc["_id"]] = doc
        for uid in uids:
            doc = await self._studies.by_study_uid(uid)
            if doc is not None:
                rows[doc["_id"]] = doc
        if not rows and uids:
            doc = await self._row_for(uids[0], event.facility or DEFAULT_FACILITY)
            rows[doc["_id"]] = doc
        for doc in rows.values():
            await self._mpps(doc, status)

    async def _mpps(self, doc: Document, status: str) -> None:
        await self._studies.collection.update_one(
            {"_id": doc["_id"]}, {"$set": {"mpps_status": status}, "$inc": {"version": 1}}
        )
        doc = await self._studies.get(doc["_id"])
        await self._studies.changed(doc, "mpps")
        if status == "IN PROGRESS" and doc["status"] == Status.SCHEDULED.value:
            await self._advance(doc, Status.ARRIVED, "MPPS in progress")
        elif status == "COMPLETED" and doc["status"] in (
            Status.SCHEDULED.value,
            Status.ARRIVED.value,
        ):
            await self._advance(doc, Status.UNREAD, "MPPS completed")


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list) or len(value) > 100:
        raise MalformedEvent(f"{key} must be a list of at most 100 values")
    return value


def _first(doc: Mapping[str, Any] | None, key: str) -> str | None:
    values = (doc or {}).get(key) or []
    return str(values[0])[:16] if isinstance(values, list) and values else None

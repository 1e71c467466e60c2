"""The archive index: where each stored object is, and the patient/study/series it belongs to.

Collections and their document shapes (times are epoch floats):

- ``dicom_instances``: ``_id`` = SOP Instance UID; ``facility``, ``study_uid``, ``series_uid``,
  ``sop_class_uid``, ``transfer_syntax``, ``instance_number``, ``frames``, ``blob`` (blob key),
  ``size``, ``stored_at``, ``q`` (queryable instance-level values by keyword) and ``attrs``
  (the instance-level DICOM JSON answered by C-FIND and QIDO, as a JSON *string*: the embedded
  store decodes a string several times faster than the same data as nested documents).
- ``dicom_metadata``: ``_id`` = SOP Instance UID; ``series_uid``, ``study_uid``, ``facility``,
  ``json`` (the whole header as a DICOM JSON string, pixel data as an empty BulkDataURI), so WADO-RS
  metadata of a 300-image series is one indexed read instead of 300 file parses.
- ``dicom_series``: ``_id`` = Series Instance UID; ``facility``, ``study_uid``, ``q``, ``attrs``,
  ``instances``, ``bytes``, ``updated_at``.
- ``dicom_studies``: ``_id`` = Study Instance UID; ``facility``, ``q`` (study and patient values,
  ``PatientName_lc`` for case-insensitive name matching), ``modalities`` (a list; nx-27017
  cannot ``$addToSet`` into a nested path), ``attrs``, ``series``, ``instances``, ``bytes``,
  ``updated_at``, and ``performed_status`` once an MPPS names the study.
- ``dicom_patients``: ``_id`` = ``<facility>|<PatientID>``; ``facility``, ``q``, ``attrs``.

Writes are shaped for the embedded store: a batch of new instances is one ``insert_many``, sent
while their files are still being flushed, and the senders hear success once both are durable.
The parents are upserts by ``_id`` with ``$inc`` counters — one per distinct series and study
in the batch, so concurrent associations share the cost (group commit). The ``dicom_metadata``
documents are derived from the stored files, so they are written after the senders were
answered, gathered for up to ``COUNT_DELAY_S`` (one ``insert_many``), not on the success path;
``Archive.metadata`` rebuilds any that a crash left unwritten from the blob, so readers never
depend on the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.results import UpdateResult

from server.dicom.parse import Prepared
from server.store.blobs import BlobStore
from server.store.database import Document, IndexSpec, Store

log = logging.getLogger(__name__)

INSTANCES = "dicom_instances"
METADATA = "dicom_metadata"
SERIES = "dicom_series"
STUDIES = "dicom_studies"
PATIENTS = "dicom_patients"

INDEXES = [
    IndexSpec(INSTANCES, [("series_uid", 1), ("instance_number", 1)]),
    IndexSpec(INSTANCES, [("study_uid", 1)]),
    IndexSpec(METADATA, [("series_uid", 1)]),
    IndexSpec(METADATA, [("study_uid", 1)]),
    IndexSpec(SERIES, [("study_uid", 1)]),
    IndexSpec(STUDIES, [("facility", 1), ("q.StudyDate", -1)]),
    IndexSpec(STUDIES, [("q.PatientID", 1)]),
    IndexSpec(STUDIES, [("q.AccessionNumber", 1)]),
    IndexSpec(PATIENTS, [("facility", 1), ("q.PatientID", 1)]),
]

PATIENT_TAGS = {
    "PatientName": "00100010",
    "PatientID": "00100020",
    "IssuerOfPatientID": "00100021",
    "PatientBirthDate": "00100030",
    "PatientSex": "00100040",
}
STUDY_TAGS = {
    "StudyInstanceUID": "0020000D",
    "StudyDate": "00080020",
    "StudyTime": "00080030",
    "AccessionNumber": "00080050",
    "StudyID": "00200010",
    "StudyDescription": "00081030",
    "ReferringPhysicianName": "00080090",
}
SERIES_TAGS = {
    "SeriesInstanceUID": "0020000E",
    "Modality": "00080060",
    "SeriesNumber": "00200011",
    "SeriesDescription": "0008103E",
    "SeriesDate": "00080021",
    "SeriesTime": "00080031",
    "BodyPartExamined": "00180015",
    "PerformedProcedureStepStartDate": "00400244",
    "StudyInstanceUID": "0020000D",
}
INSTANCE_TAGS = {
    "SOPInstanceUID": "00080018",
    "SOPClassUID": "00080016",
    "InstanceNumber": "00200013",
    "Rows": "00280010",
    "Columns": "00280011",
    "BitsAllocated": "00280100",
    "NumberOfFrames": "00280008",
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
}
CHARSET_TAG = "00080005"


def _first(body: dict[str, Any], tag: str) -> Any:
    element = body.get(tag) or {}
    values = element.get("Value") or []
    if not values:
        return None
    value = values[0]
    if isinstance(value, dict):
        return value.get("Alphabetic")
    return value


def _subset(body: dict[str, Any], tags: Iterable[str]) -> dict[str, Any]:
    return {tag: body[tag] for tag in [CHARSET_TAG, *tags] if tag in body}


def _values(body: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for keyword, tag in tags.items():
        value = _first(body, tag)
        if value is not None:
            values[keyword] = str(value) if not isinstance(value, int | float) else value
    return values


def _text(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def patient_key(facility: str, patient_id: str) -> str:
    return f"{facility}|{patient_id}"


def blob_key(sop_instance_uid: str) -> str:
    """Each received copy gets its own key, so a duplicate never overwrites the stored copy."""
    digest = hashlib.sha1(sop_instance_uid.encode(), usedforsecurity=False).hexdigest()
    return f"dicom/{digest[:2]}/{sop_instance_uid}.{secrets.token_hex(4)}.dcm"


def metadata_doc(prepared: Prepared, facility: str) -> Document:
    """Pure: the ``dicom_metadata`` document of one object (derivable from its file alone)."""
    return {
        "_id": prepared.sop_instance_uid,
        "facility": facility,
        "study_uid": prepared.study_instance_uid,
        "series_uid": prepared.series_instance_uid,
        "instance_number": prepared.instance_number,
        "frames": prepared.frames,
        "json": _text(prepared.json),
    }


@dataclass(frozen=True)
class Docs:
    instance: Document
    metadata: Document
    series: Document
    study: Document
    patient: Document


def build_docs(prepared: Prepared, facility: str, key: str, now: float) -> Docs:
    """Pure: the index documents for one prepared object."""
    body = prepared.json
    study_q = {**_values(body, PATIENT_TAGS), **_values(body, STUDY_TAGS)}
    if "PatientName" in study_q:
        study_q["PatientName_lc"] = str(study_q["PatientName"]).lower()
    series_q = _values(body, SERIES_TAGS)
    instance_q = _values(body, INSTANCE_TAGS)
    instance = {
        "_id": prepared.sop_instance_uid,
        "facility": facility,
        "study_uid": prepared.study_instance_uid,
        "series_uid": prepared.series_instance_uid,
        "sop_class_uid": prepared.sop_class_uid,
        "transfer_syntax": prepared.transfer_syntax_uid,
        "instance_number": prepared.instance_number,
        "frames": prepared.frames,
        "blob": key,
        "size": len(prepared.raw),
        "stored_at": now,
        "q": instance_q,
        "attrs": _text(
            {
                **_subset(body, INSTANCE_TAGS.values()),
                "00020010": {"vr": "UI", "Value": [prepared.transfer_syntax_uid]},
            }
        ),
    }
    metadata = metadata_doc(prepared, facility)
    series = {
        "study_uid": prepared.study_instance_uid,
        "facility": facility,
        "q": series_q,
        "attrs": _text(_subset(body, SERIES_TAGS.values())),
    }
    study = {
        "facility": facility,
        "q": study_q,
        "attrs": _text(_subset(body, [*PATIENT_TAGS.values(), *STUDY_TAGS.values()])),
    }
    patient = {
        "facility": facility,
        "q": _values(body, PATIENT_TAGS),
        "attrs": _text(_subset(body, PATIENT_TAGS.values())),
    }
    return Docs(instance, metadata, series, study, patient)


@dataclass
class _Pending:
    prepared: Prepared
    facility: str
    key: str
    durable: asyncio.Task[None]
    future: asyncio.Future[bool]


# Counters of series already known, and the metadata documents of answered objects, are
# written at most this often while images keep arriving (and at once when someone asks for
# ``settled``), not after every batch: with 4 associations a batch is mostly one or two
# objects, and a store command costs the embedded store about as much for one document as for
# ten.
COUNT_DELAY_S = 0.5
METADATA_BATCH = 64
MAX_METADATA_BACKLOG = 10_000

# An index entry is written while its file is still being flushed. A re-sent object whose entry
# names a missing or incomplete file is either being written right now (by another association
# or gateway process: wait up to DUPLICATE_WAIT_S for it) or was left by a crash before its
# sender heard success (replace the entry with the new copy). An entry older than IN_FLIGHT_S
# cannot be in flight.
DUPLICATE_WAIT_S = 5.0
IN_FLIGHT_S = 60.0
DUPLICATE_POLL_S = 0.05


def in_flight(instance: Document, now: float) -> bool:
    """Whether an entry is young enough that its file may still be being written."""
    stored_at = instance.get("stored_at")
    return isinstance(stored_at, int | float) and now - stored_at < IN_FLIGHT_S


def _write_errors(exc: BulkWriteError) -> dict[int, dict[str, Any]]:
    return {int(e["index"]): e for e in exc.details.get("writeErrors", [])}


class IndexWriter:
    """Group commit: objects queue up, one task writes whatever has gathered as one batch.

    ``submit`` returns only after the object's blob and index entries are durable (True) or it
    was already stored (False, a duplicate). A failure raises, and leaves no index entry. Each
    received copy gets its own blob key, so duplicates are detected by the unique ``_id`` on
    insert and their fresh blob is removed, never the stored one.

    The blob is written from the moment ``submit`` is called and the index entry is inserted
    meanwhile: the sender waits for the slower of the two instead of their sum. An entry can
    therefore name a file that is not complete yet, for a few milliseconds or, after a crash,
    for good; readers check the size (``Archive``) and a re-sent object repairs such an entry
    (``_settle_duplicate``).
    """

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Callable[[], float] = time.time,
        max_batch: int = 64,
        count_delay: float = COUNT_DELAY_S,
    ) -> None:
        self._store = store
        self.blobs = blobs
        self._clock = clock
        self._max_batch = max_batch
        self._count_delay = count_delay
        self._counted_at = time.monotonic()
        self._stopping = False
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._known_series: set[str] = set()
        self._deferred_series: dict[str, list[int]] = {}
        self._deferred_studies: dict[str, list[int]] = {}
        self._metadata_backlog: list[Document] = []
        self._settled = asyncio.Event()
        self._settled.set()
        self._duplicates: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dicom-index")

    async def stop(self) -> None:
        # Flag and cancel: PyMongo may turn a cancellation into an error the loop would survive.
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._duplicates):
            task.cancel()
        await asyncio.gather(*self._duplicates, return_exceptions=True)
        shutting_down = RuntimeError("the archive is shutting down")
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            _fail(pending, shutting_down)
            await self._drop_blob(pending)
        await self._flush_deferred()
        self._settled.set()

    async def settled(self) -> None:
        """Wait until every acknowledged object is counted in its series and study and its
        metadata document is written."""
        await self._settled.wait()
        await self._flush_deferred()

    async def submit(self, prepared: Prepared, facility: str) -> bool:
        """Store and index ``prepared``; True when new, False when it was already stored."""
        if self._task is None:
            raise RuntimeError("the archive index writer is not running")
        loop = asyncio.get_running_loop()
        key = blob_key(prepared.sop_instance_uid)
        durable = loop.create_task(self.blobs.put_new(key, prepared.raw))
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put_nowait(_Pending(prepared, facility, key, durable, future))
        # Shielded: a sender that gives up (an aborted association) must not cancel the
        # outcome the writer still has to settle for the blob and the index entry.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while not self._stopping:
            if self._queue.empty():
                self._settled.set()
            try:
                first = (
                    await asyncio.wait_for(self._queue.get(), self._count_delay)
                    if self._deferred_series or self._deferred_studies or self._metadata_backlog
                    else await self._queue.get()
                )
            except TimeoutError:
                await self._flush_deferred()
                continue
            batch = [first]
            self._settled.clear()
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for pending in batch:
                    _fail(pending, RuntimeError("the archive is shutting down"))
                raise
            except Exception as exc:
                log.exception("index batch failed")
                for pending in batch:
                    _fail(pending, exc)
            if (
                time.monotonic() - self._counted_at >= self._count_delay
                or len(self._metadata_backlog) >= METADATA_BATCH
            ):
                await self._flush_deferred()

    async def _flush_deferred(self) -> None:
        await self._flush_metadata()
        await self._flush_counts()

    async def _write(self, batch: list[_Pending]) -> None:
        now = self._clock()
        fresh: dict[str, tuple[_Pending, Docs]] = {}
        for pending in batch:
            docs = build_docs(pending.prepared, pending.facility, pending.key, now)
            if pending.prepared.sop_instance_uid in fresh:
                self._start_settling(pending, docs, now)
            else:
                fresh[pending.prepared.sop_instance_uid] = (pending, docs)
        entries = list(fresh.values())
        try:
            await self._store[INSTANCES].insert_many(
                [docs.instance for _pending, docs in entries], ordered=False
            )
            instance_errors: dict[int, dict[str, Any]] = {}
        except BulkWriteError as exc:
            instance_errors = _write_errors(exc)
            if not instance_errors:
                await self._undo(entries, exc)
                return
        except Exception as exc:
            await self._undo(entries, exc)
            return
        inserted: list[tuple[_Pending, Docs]] = []
        for index, (pending, docs) in enumerate(entries):
            instance_error = instance_errors.get(index)
            if instance_error is None:
                inserted.append((pending, docs))
            elif instance_error.get("code") == 11000:
                self._start_settling(pending, docs, now)
            else:
                _fail(pending, RuntimeError(str(instance_error.get("errmsg"))))
                await self._drop_blob(pending)
        if inserted:
            # wait, not gather: a cancelled writer must not cancel the file writes themselves
            await asyncio.wait([pending.durable for pending, _docs in inserted])
        written: list[tuple[_Pending, Docs]] = []
        unwritten: list[tuple[_Pending, BaseException]] = []
        for pending, docs in inserted:
            failure = _failure(pending.durable)
            if failure is None:
                written.append((pending, docs))
            else:
                unwritten.append((pending, failure))
        if unwritten:
            await self._unindex([pending.key for pending, _failure_ in unwritten])
            for pending, failure in unwritten:
                _fail(pending, failure)
        await self._stored(written, now)

    async def _stored(self, items: list[tuple[_Pending, Docs]], now: float) -> None:
        """Both the file and the index entry are durable: count the objects and answer."""
        docs = [docs for _pending, docs in items]
        await self._index_parents(docs, now)
        self._metadata_backlog.extend(doc.metadata for doc in docs)
        for pending, _docs in items:
            _resolve(pending, True)

    def _start_settling(self, pending: _Pending, docs: Docs, now: float) -> None:
        task = asyncio.get_running_loop().create_task(self._settle_duplicate(pending, docs, now))
        self._duplicates.add(task)
        task.add_done_callback(self._duplicates.discard)

    async def _settle_duplicate(self, pending: _Pending, docs: Docs, now: float) -> None:
        """An index entry for this SOP Instance UID exists: a duplicate, unless its file is
        missing or incomplete (see ``DUPLICATE_WAIT_S``). Runs beside the writer, so a wait
        here holds up nobody else."""
        try:
            await pending.durable
            await self._settle(pending, docs, now)
        except asyncio.CancelledError:
            _fail(pending, RuntimeError("the archive is shutting down"))
            await asyncio.shield(self._drop_blob(pending))
            raise
        except Exception as exc:
            log.exception("settling a re-sent %s failed", docs.instance["_id"])
            _fail(pending, exc)
            await self._drop_blob(pending)

    async def _settle(self, pending: _Pending, docs: Docs, now: float) -> None:
        instances = self._store[INSTANCES]
        uid = docs.instance["_id"]
        waited_until = time.monotonic() + DUPLICATE_WAIT_S
        for _attempt in range(int(DUPLICATE_WAIT_S / DUPLICATE_POLL_S) + 10):
            existing = await instances.find_one(
                {"_id": uid}, {"blob": 1, "size": 1, "stored_at": 1}
            )
            if existing is None:
                try:
                    await instances.insert_one(dict(docs.instance))
                except DuplicateKeyError:
                    continue
                await self._stored([(pending, docs)], now)
                return
            if await self._intact(existing):
                await self._drop_blob(pending)
                _resolve(pending, False)
                return
            if in_flight(existing, self._clock()) and time.monotonic() < waited_until:
                await asyncio.sleep(DUPLICATE_POLL_S)
                continue
            replaced = await instances.update_one(
                {"_id": uid, "blob": existing.get("blob")},
                {"$set": {k: v for k, v in docs.instance.items() if k != "_id"}},
            )
            if replaced.matched_count:
                log.warning("%s was indexed without its whole file; the new copy replaces it", uid)
                if isinstance(existing.get("blob"), str):
                    with contextlib.suppress(Exception):
                        await self.blobs.delete(existing["blob"])
                await self._stored([(pending, docs)], now)
                return
        raise RuntimeError(f"the index entry of {uid} keeps changing; try again")

    async def _intact(self, instance: Document) -> bool:
        blob, size = instance.get("blob"), instance.get("size")
        if not isinstance(blob, str) or not isinstance(size, int):
            return False
        try:
            return await self.blobs.size(blob) == size
        except ValueError:
            return False

    async def _flush_metadata(self) -> None:
        """Write the metadata of answered objects; the writer and ``settled`` may both call this.

        A copy already there (a reader rebuilt it, or a crash left it) is replaced by ours. If
        the store fails, the documents are kept for the next flush up to a bound; past it they
        are dropped with a warning and ``Archive.metadata`` rebuilds them from the blobs.
        """
        if not self._metadata_backlog:
            return
        taken, self._metadata_backlog = self._metadata_backlog, []
        try:
            await self._store[METADATA].insert_many(taken, ordered=False)
            return
        except BulkWriteError as exc:
            errors = _write_errors(exc)
            retry = [taken[i] for i, e in errors.items() if e.get("code") != 11000]
            for index, error in errors.items():
                if error.get("code") == 11000:
                    doc = taken[index]
                    with contextlib.suppress(PyMongoError):
                        await self._store[METADATA].replace_one({"_id": doc["_id"]}, doc)
            if not errors:
                retry = taken
        except PyMongoError:
            retry = taken
        except BaseException:
            self._metadata_backlog[:0] = taken
            raise
        if len(self._metadata_backlog) + len(retry) <= MAX_METADATA_BACKLOG:
            self._metadata_backlog[:0] = retry
        else:
            log.warning("dropped %d metadata documents; readers rebuild them", len(retry))

    async def _index_parents(self, docs: list[Docs], now: float) -> None:
        """Create parents before success; only count into ones this process already made.

        An object of a series this process has indexed before is acknowledged as soon as it
        is inserted; its series and study counters follow within ``COUNT_DELAY_S`` (one write
        for all the images of that interval), and ``settled`` writes them at once.
        """
        fresh = [d for d in docs if d.instance["series_uid"] not in self._known_series]
        if fresh:
            await self._update_parents(fresh, now)
            if len(self._known_series) > 100_000:
                self._known_series.clear()
            self._known_series.update(d.instance["series_uid"] for d in fresh)
        created = {id(d) for d in fresh}
        for doc in docs:
            if id(doc) in created:
                continue
            size = int(doc.instance["size"])
            series = self._deferred_series.setdefault(doc.instance["series_uid"], [0, 0])
            study = self._deferred_studies.setdefault(doc.instance["study_uid"], [0, 0])
            series[0] += 1
            series[1] += size
            study[0] += 1
            study[1] += size

    async def _flush_counts(self) -> None:
        """Write the deferred counters; the writer and ``settled`` may both call this."""
        self._counted_at = time.monotonic()
        now = self._clock()
        for collection, deferred in (
            (SERIES, self._deferred_series),
            (STUDIES, self._deferred_studies),
        ):
            taken = dict(deferred)
            deferred.clear()
            try:
                for uid, (count, size) in list(taken.items()):
                    try:
                        await self._store[collection].update_one(
                            {"_id": uid},
                            {
                                "$inc": {"instances": count, "bytes": size},
                                "$set": {"updated_at": now},
                            },
                        )
                    except PyMongoError:
                        log.exception("counting into %s %s failed; will retry", collection, uid)
                        continue
                    del taken[uid]
            finally:
                # Whatever was not written (an error, a cancellation) is counted again later.
                for uid, (count, size) in taken.items():
                    again = deferred.setdefault(uid, [0, 0])
                    again[0] += count
                    again[1] += size

    async def _drop_blob(self, pending: _Pending) -> None:
        """Remove the copy written for an object that is not kept (once it is written)."""
        await asyncio.wait([pending.durable])
        if _failure(pending.durable) is not None:
            return
        with contextlib.suppress(Exception):
            await self.blobs.delete(pending.key)

    async def _unindex(self, keys: list[str]) -> None:
        """Remove this batch's entries, matched by their fresh blob keys so a stored copy is
        never touched. Should the store refuse, an entry names a missing file: readers skip
        it and a re-send repairs it (``_settle_duplicate``)."""
        try:
            await self._store[INSTANCES].delete_many({"blob": {"$in": keys}})
        except PyMongoError:
            log.exception("could not remove the index entries of %d unwritten objects", len(keys))

    async def _undo(self, entries: list[tuple[_Pending, Docs]], exc: BaseException) -> None:
        """Leave nothing half-written: what this batch inserted, and its blobs, are removed."""
        await self._unindex([pending.key for pending, _docs in entries])
        for pending, _docs in entries:
            _fail(pending, exc)
            await self._drop_blob(pending)

    async def _update_parents(self, docs: list[Docs], now: float) -> None:
        by_series: dict[str, list[Docs]] = {}
        for doc in docs:
            by_series.setdefault(doc.instance["series_uid"], []).append(doc)
        new_series_by_study: dict[str, list[str]] = {}
        for series_uid, members in by_series.items():
            last = members[-1]
            result = await _upsert(
                self._store[SERIES],
                {"_id": series_uid},
                {
                    "$set": {**last.series, "updated_at": now},
                    "$inc": {
                        "instances": len(members),
                        "bytes": sum(m.instance["size"] for m in members),
                    },
                },
            )
            modality = last.series["q"].get("Modality")
            if result.upserted_id is not None:
                new_series_by_study.setdefault(last.instance["study_uid"], []).append(
                    str(modality or "")
                )
        by_study: dict[str, list[Docs]] = {}
        for doc in docs:
            by_study.setdefault(doc.instance["study_uid"], []).append(doc)
        for study_uid, members in by_study.items():
            last = members[-1]
            new_series = new_series_by_study.get(study_uid, [])
            update: Document = {
                "$set": {
                    "facility": last.study["facility"],
                    "attrs": last.study["attrs"],
                    "updated_at": now,
                    **{f"q.{k}": v for k, v in last.study["q"].items()},
                },
                "$inc": {
                    "instances": len(members),
                    "series": len(new_series),
                    "bytes": sum(m.instance["size"] for m in members),
                },
            }
            modalities = sorted({m for m in new_series if m})
            if modalities:
                update["$addToSet"] = {"modalities": {"$each": modalities}}
            result = await _upsert(self._store[STUDIES], {"_id": study_uid}, update)
            patient_id = last.patient["q"].get("PatientID")
            if result.upserted_id is not None and patient_id is not None:
                await _upsert(
                    self._store[PATIENTS],
                    {"_id": patient_key(last.patient["facility"], str(patient_id))},
                    {"$set": {**last.patient, "updated_at": now}, "$inc": {"studies": 1}},
                )


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    """Why a finished blob write failed (None if it succeeded); a failed write left no file."""
    if task.cancelled():
        return RuntimeError("the object's file was not written")
    return task.exception()


def _resolve(pending: _Pending, new: bool) -> None:
    if not pending.future.done():
        pending.future.set_result(new)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)


async def _upsert(
    collection: AsyncCollection[Document], query: Document, update: Document
) -> UpdateResult:
    """Upsert by ``_id``; two processes creating the same parent at once retry as an update."""
    try:
        return await collection.update_one(query, update, upsert=True)
    except DuplicateKeyError:
        return await collection.update_one(query, update, upsert=True)

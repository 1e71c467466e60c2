"""The archive index: where each stored object is, and the patient/study/series it belongs to.

Collections and their document shapes (times are epoch floats):

- ``dicom_instances``: ``_id`` = SOP Instance UID; ``facility``, ``study_uid``, ``series_uid``,
  ``sop_class_uid``, ``transfer_syntax``, ``instance_number``, ``frames``, ``blob`` (blob key),
  ``size``, ``stored_at``, ``q`` (queryable instance-level values by keyword) and ``attrs``
  (the instance-level DICOM JSON answered by C-FIND and QIDO).
- ``dicom_metadata``: ``_id`` = SOP Instance UID; ``series_uid``, ``study_uid``, ``facility``,
  ``json`` (the whole header as DICOM JSON, pixel data as an empty BulkDataURI), so WADO-RS
  metadata of a 300-image series is one indexed read instead of 300 file parses.
- ``dicom_series``: ``_id`` = Series Instance UID; ``facility``, ``study_uid``, ``q``, ``attrs``,
  ``instances``, ``bytes``, ``updated_at``.
- ``dicom_studies``: ``_id`` = Study Instance UID; ``facility``, ``q`` (study and patient values,
  ``PatientName_lc`` for case-insensitive name matching), ``modalities`` (a list; nx-27017
  cannot ``$addToSet`` into a nested path), ``attrs``, ``series``, ``instances``, ``bytes``,
  ``updated_at``, and ``performed_status`` once an MPPS names the study.
- ``dicom_patients``: ``_id`` = ``<facility>|<PatientID>``; ``facility``, ``q``, ``attrs``.

Writes are shaped for the embedded store: a batch of new instances is two ``insert_many`` calls,
and the parents are upserts by ``_id`` with ``$inc`` counters — one per distinct series and study
in the batch, so concurrent associations share the cost (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import BulkWriteError, PyMongoError

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


def patient_key(facility: str, patient_id: str) -> str:
    return f"{facility}|{patient_id}"


def blob_key(sop_instance_uid: str) -> str:
    """Each received copy gets its own key, so a duplicate never overwrites the stored copy."""
    digest = hashlib.sha1(sop_instance_uid.encode(), usedforsecurity=False).hexdigest()
    return f"dicom/{digest[:2]}/{sop_instance_uid}.{secrets.token_hex(4)}.dcm"


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
        "attrs": {
            **_subset(body, INSTANCE_TAGS.values()),
            "00020010": {"vr": "UI", "Value": [prepared.transfer_syntax_uid]},
        },
    }
    metadata = {
        "_id": prepared.sop_instance_uid,
        "facility": facility,
        "study_uid": prepared.study_instance_uid,
        "series_uid": prepared.series_instance_uid,
        "instance_number": prepared.instance_number,
        "json": body,
    }
    series = {
        "study_uid": prepared.study_instance_uid,
        "facility": facility,
        "q": series_q,
        "attrs": _subset(body, SERIES_TAGS.values()),
    }
    study = {
        "facility": facility,
        "q": study_q,
        "attrs": _subset(body, [*PATIENT_TAGS.values(), *STUDY_TAGS.values()]),
    }
    patient = {
        "facility": facility,
        "q": _values(body, PATIENT_TAGS),
        "attrs": _subset(body, PATIENT_TAGS.values()),
    }
    return Docs(instance, metadata, series, study, patient)


@dataclass
class _Pending:
    prepared: Prepared
    facility: str
    future: asyncio.Future[bool]


class IndexWriter:
    """Group commit: objects queue up, one task writes whatever has gathered as one batch.

    ``submit`` returns only after the object's blob and index entries are durable (True) or it
    was already stored (False, a duplicate). A failure raises, and leaves no index entry.
    """

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Callable[[], float] = time.time,
        max_batch: int = 64,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dicom-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the archive is shutting down"))

    async def submit(self, prepared: Prepared, facility: str) -> bool:
        if self._task is None:
            raise RuntimeError("the archive index writer is not running")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(prepared, facility, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:
                log.exception("index batch failed")
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)

    async def _write(self, batch: list[_Pending]) -> None:
        now = self._clock()
        fresh: dict[str, tuple[_Pending, Docs]] = {}
        for pending in batch:
            uid = pending.prepared.sop_instance_uid
            if uid in fresh:
                pending.future.set_result(False)
                continue
            key = blob_key(uid)
            fresh[uid] = (pending, build_docs(pending.prepared, pending.facility, key, now))
        existing = {
            doc["_id"]
            async for doc in self._store[INSTANCES].find({"_id": {"$in": list(fresh)}}, {"_id": 1})
        }
        for uid in existing:
            pending, _docs = fresh.pop(uid)
            pending.future.set_result(False)
        if not fresh:
            return
        written = await self._put_blobs(fresh)
        if not written:
            return
        docs = [fresh[uid][1] for uid in written]
        try:
            await self._store[METADATA].insert_many([d.metadata for d in docs], ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                await self._undo(written, fresh, exc)
                return
        inserted = set(written)
        try:
            await self._store[INSTANCES].insert_many([d.instance for d in docs], ordered=False)
        except BulkWriteError as exc:
            failed = {docs[e["index"]].instance["_id"]: e for e in exc.details["writeErrors"]}
            for uid, error in failed.items():
                inserted.discard(uid)
                pending, doc = fresh[uid]
                with contextlib.suppress(Exception):
                    await self._blobs.delete(doc.instance["blob"])
                if error.get("code") == 11000:
                    pending.future.set_result(False)
                else:
                    pending.future.set_exception(RuntimeError(str(error.get("errmsg"))))
        except PyMongoError as exc:
            await self._undo(written, fresh, exc)
            raise
        await self._update_parents([fresh[uid][1] for uid in inserted], now)
        for uid in inserted:
            fresh[uid][0].future.set_result(True)

    async def _put_blobs(self, fresh: dict[str, tuple[_Pending, Docs]]) -> list[str]:
        uids = list(fresh)
        results = await asyncio.gather(
            *(
                self._blobs.put(fresh[uid][1].instance["blob"], fresh[uid][0].prepared.raw)
                for uid in uids
            ),
            return_exceptions=True,
        )
        written = []
        for uid, result in zip(uids, results, strict=True):
            if isinstance(result, BaseException):
                fresh[uid][0].future.set_exception(result)
            else:
                written.append(uid)
        return written

    async def _undo(
        self, written: list[str], fresh: dict[str, tuple[_Pending, Docs]], exc: Exception
    ) -> None:
        """Leave nothing half-written: metadata and blobs of a failed batch are removed."""
        with contextlib.suppress(PyMongoError):
            await self._store[METADATA].delete_many({"_id": {"$in": written}})
        for uid in written:
            pending, docs = fresh[uid]
            with contextlib.suppress(Exception):
                await self._blobs.delete(docs.instance["blob"])
            if not pending.future.done():
                pending.future.set_exception(exc)

    async def _update_parents(self, docs: list[Docs], now: float) -> None:
        by_series: dict[str, list[Docs]] = {}
        for doc in docs:
            by_series.setdefault(doc.instance["series_uid"], []).append(doc)
        new_series_by_study: dict[str, list[str]] = {}
        for series_uid, members in by_series.items():
            last = members[-1]
            result = await self._store[SERIES].update_one(
                {"_id": series_uid},
                {
                    "$set": {**last.series, "updated_at": now},
                    "$inc": {
                        "instances": len(members),
                        "bytes": sum(m.instance["size"] for m in members),
                    },
                },
                upsert=True,
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
            result = await self._store[STUDIES].update_one({"_id": study_uid}, update, upsert=True)
            patient_id = last.patient["q"].get("PatientID")
            if result.upserted_id is not None and patient_id is not None:
                await self._store[PATIENTS].update_one(
                    {"_id": patient_key(last.patient["facility"], str(patient_id))},
                    {"$set": {**last.patient, "updated_at": now}, "$inc": {"studies": 1}},
                    upsert=True,
                )

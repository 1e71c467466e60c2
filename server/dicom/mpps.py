"""Modality Performed Procedure Step: the modality says a procedure started, ended or stopped.

``dicom_mpps`` documents: ``{_id: MPPS SOP Instance UID, facility, status ("IN PROGRESS" |
"COMPLETED" | "DISCONTINUED"), study_uids, accession_numbers, json (the attributes as DICOM
JSON), created_at, updated_at}``. Each change updates the named studies' ``performed_status``
and the matching scheduled steps, and is published as ``dicom.mpps.updated``
``{mpps_uid, status, study_instance_uids, accession_numbers}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from server.dicom.index import STUDIES
from server.dicom.worklist import Worklist
from server.hub import DomainEvent, EventHub
from server.store.database import Document, Store

COLLECTION = "dicom_mpps"
IN_PROGRESS = "IN PROGRESS"
FINAL = {"COMPLETED", "DISCONTINUED"}
STEP_STATUS = {
    "IN PROGRESS": "in_progress",
    "COMPLETED": "completed",
    "DISCONTINUED": "discontinued",
}

# DIMSE N-CREATE / N-SET statuses (PS3.4 F.7.2, PS3.7 C).
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
DUPLICATE_INSTANCE = 0x0111
NO_SUCH_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
NO_LONGER_UPDATABLE = 0xA710
PROCESSING_FAILURE = 0x0110


@dataclass(frozen=True)
class Outcome:
    status: int
    reason: str = ""


def references(ds: Dataset) -> tuple[list[str], list[str]]:
    """Study UIDs and accession numbers named by the step's scheduled-step attributes."""
    studies: list[str] = []
    accessions: list[str] = []
    for item in ds.get("ScheduledStepAttributesSequence", []) or []:
        study = str(item.get("StudyInstanceUID", "") or "").strip()
        accession = str(item.get("AccessionNumber", "") or "").strip()
        if study and study not in studies:
            studies.append(study)
        if accession and accession not in accessions:
            accessions.append(accession)
    return studies, accessions


class Mpps:
    def __init__(self, store: Store, hub: EventHub, worklist: Worklist) -> None:
        self._store = store
        self._collection = store[COLLECTION]
        self._hub = hub
        self._worklist = worklist

    async def create(self, uid: str, ds: Dataset, facility: str) -> Outcome:
        status = str(ds.get("PerformedProcedureStepStatus", "") or "").strip()
        if not status:
            return Outcome(MISSING_ATTRIBUTE, "PerformedProcedureStepStatus is required")
        if status != IN_PROGRESS:
            return Outcome(INVALID_ATTRIBUTE_VALUE, "a new step must be IN PROGRESS")
        if await self._collection.find_one({"_id": uid}, {"_id": 1}) is not None:
            return Outcome(DUPLICATE_INSTANCE, "this MPPS instance already exists")
        studies, accessions = references(ds)
        now = time.time()
        await self._collection.insert_one(
            {
                "_id": uid,
                "facility": facility,
                "status": status,
                "study_uids": studies,
                "accession_numbers": accessions,
                "json": ds.to_json_dict(),
                "created_at": now,
                "updated_at": now,
            }
        )
        await self._applied(uid, status, studies, accessions, facility)
        return Outcome(SUCCESS)

    async def update(self, uid: str, changes: Dataset, facility: str) -> Outcome:
        doc = await self._collection.find_one({"_id": uid, "facility": facility})
        if doc is None:
            return Outcome(NO_SUCH_INSTANCE, "no such MPPS instance")
        if doc["status"] in FINAL:
            return Outcome(NO_LONGER_UPDATABLE, f"the step is already {doc['status']}")
        status = str(changes.get("PerformedProcedureStepStatus", doc["status"]) or "").strip()
        if status not in STEP_STATUS:
            return Outcome(INVALID_ATTRIBUTE_VALUE, f"unknown status {status[:20]!r}")
        merged: dict[str, Any] = {**doc["json"], **changes.to_json_dict()}
        await self._collection.update_one(
            {"_id": uid},
            {"$set": {"status": status, "json": merged, "updated_at": time.time()}},
        )
        await self._applied(uid, status, doc["study_uids"], doc["accession_numbers"], facility)
        return Outcome(SUCCESS)

    async def get(self, uid: str) -> Document | None:
        return await self._collection.find_one({"_id": uid})

    async def _applied(
        self, uid: str, status: str, studies: list[str], accessions: list[str], facility: str
    ) -> None:
        if studies:
            await self._store[STUDIES].update_many(
                {"_id": {"$in": studies}, "facility": facility},
                {"$set": {"performed_status": status, "mpps_uid": uid}},
            )
        await self._worklist.mark(studies, accessions, STEP_STATUS[status])
        await self._hub.publish(
            DomainEvent(
                "dicom.mpps.updated",
                {
                    "mpps_uid": uid,
                    "status": status,
                    "study_instance_uids": studies,
                    "accession_numbers": accessions,
                },
                facility,
            )
        )

"""Scheduled procedure steps, answered to modalities by the Modality Worklist C-FIND SCP.

Admins create, list and cancel them over HTTP today; the workflow service will drive them later
by writing the same documents. ``scheduled_procedures`` document shape (times are epoch floats,
dates ``YYYYMMDD``, times ``HHMMSS``, names in DICOM ``Family^Given`` form)::

    {
      "_id": str,                        # scheduled procedure step id (generated if absent)
      "facility": str,
      "status": "scheduled" | "in_progress" | "completed" | "discontinued" | "cancelled",
      "patient": {"name": str, "name_lc": str, "id": str, "birth_date": str | None,
                  "sex": "M" | "F" | "O" | None},
      "accession_number": str,
      "requested_procedure_id": str,
      "requested_procedure_description": str,
      "study_instance_uid": str,         # the UID the modality must use for the images
      "referring_physician": str | None,
      "step": {"station_ae_title": str | None, "modality": str, "start_date": str,
               "start_time": str, "description": str, "performing_physician": str | None},
      "created_at": float, "updated_at": float, "created_by": str
    }

Only ``scheduled`` steps are offered to modalities; MPPS moves them to ``in_progress``,
``completed`` or ``discontinued`` (matched by study UID or accession number).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from server.dicom.matching import Field, Kind, condition
from server.store.database import Document, IndexSpec, Store

COLLECTION = "scheduled_procedures"
INDEXES = [
    IndexSpec(COLLECTION, [("facility", 1), ("status", 1), ("step.start_date", 1)]),
    IndexSpec(COLLECTION, [("accession_number", 1)]),
    IndexSpec(COLLECTION, [("study_instance_uid", 1)]),
]
OFFERED = "scheduled"

FIELDS = {
    "PatientName": Field("patient.name_lc", Kind.NAME),
    "PatientID": Field("patient.id", Kind.TEXT),
    "AccessionNumber": Field("accession_number", Kind.TEXT),
    "RequestedProcedureID": Field("requested_procedure_id", Kind.TEXT),
    "StudyInstanceUID": Field("study_instance_uid", Kind.UID),
    "ScheduledStationAETitle": Field("step.station_ae_title", Kind.TEXT),
    "Modality": Field("step.modality", Kind.TEXT),
    "ScheduledProcedureStepStartDate": Field("step.start_date", Kind.DATE),
    "ScheduledProcedureStepStartTime": Field("step.start_time", Kind.TIME),
    "ScheduledProcedureStepID": Field("_id", Kind.TEXT),
}


def build_filter(keys: dict[str, str], facility: str | None) -> Document:
    query: Document = {"status": OFFERED}
    if facility is not None:
        query["facility"] = facility
    for keyword, value in keys.items():
        field = FIELDS.get(keyword)
        if field is None:
            continue
        cond = condition(field, value)
        if cond is not None:
            query[field.path] = cond
    return query


def new_document(body: dict[str, Any], facility: str, created_by: str, now: float) -> Document:
    """Pure: a scheduled procedure step from a validated ``scheduled_procedures.create`` body."""
    patient = body["patient"]
    step = body["step"]
    return {
        "_id": body.get("id") or uuid.uuid4().hex[:16].upper(),
        "facility": facility,
        "status": OFFERED,
        "patient": {
            "name": patient["name"],
            "name_lc": patient["name"].lower(),
            "id": patient["id"],
            "birth_date": patient.get("birth_date"),
            "sex": patient.get("sex"),
        },
        "accession_number": body["accession_number"],
        "requested_procedure_id": body.get("requested_procedure_id") or body["accession_number"],
        "requested_procedure_description": body.get("requested_procedure_description", ""),
        "study_instance_uid": body.get("study_instance_uid") or generate_uid(),
        "referring_physician": body.get("referring_physician"),
        "step": {
            "station_ae_title": step.get("station_ae_title"),
            "modality": step["modality"],
            "start_date": step["start_date"],
            "start_time": step.get("start_time", "000000"),
            "description": step.get("description", ""),
            "performing_physician": step.get("performing_physician"),
        },
        "created_at": now,
        "updated_at": now,
        "created_by": created_by,
    }


def public(doc: Document) -> dict[str, Any]:
    patient = {k: v for k, v in doc["patient"].items() if k != "name_lc"}
    return {
        "id": doc["_id"],
        **{k: v for k, v in doc.items() if k not in {"_id", "patient"}},
        "patient": patient,
    }


def to_dataset(doc: Document) -> Dataset:
    """The worklist answer for one step (PS3.4 K.6 return keys)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    patient = doc["patient"]
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient.get("birth_date") or ""
    ds.PatientSex = patient.get("sex") or ""
    ds.AccessionNumber = doc["accession_number"]
    ds.RequestedProcedureID = doc["requested_procedure_id"]
    ds.RequestedProcedureDescription = doc["requested_procedure_description"]
    ds.StudyInstanceUID = doc["study_instance_uid"]
    ds.ReferringPhysicianName = doc.get("referring_physician") or ""
    step = doc["step"]
    item = Dataset()
    item.ScheduledStationAETitle = step.get("station_ae_title") or ""
    item.Modality = step["modality"]
    item.ScheduledProcedureStepStartDate = step["start_date"]
    item.ScheduledProcedureStepStartTime = step["start_time"]
    item.ScheduledProcedureStepDescription = step["description"]
    item.ScheduledProcedureStepID = doc["_id"]
    item.ScheduledPerformingPhysicianName = step.get("performing_physician") or ""
    ds.ScheduledProcedureStepSequence = Sequence([item])
    return ds


def restrict(identifier: Dataset, full: Dataset) -> Dataset:
    """The answer to a worklist query: only the requested keys (PS3.4 C.2.2.1 / K.6).

    A requested key the step lacks comes back empty; a requested sequence with an item answers
    that item's keys, one without items (universal sequence matching) the whole sequence.
    Specific Character Set always comes along, since the names may need it.
    """
    response = Dataset()
    if "SpecificCharacterSet" in full:
        response.SpecificCharacterSet = full.SpecificCharacterSet
    for element in identifier:
        if element.keyword == "SpecificCharacterSet":
            continue
        if element.tag not in full:
            response.add_new(element.tag, element.VR, [] if element.VR == "SQ" else None)
            continue
        found = full[element.tag]
        if element.VR == "SQ" and found.VR == "SQ" and element.value:
            response.add_new(
                element.tag,
                "SQ",
                Sequence([restrict(element.value[0], item) for item in found.value]),
            )
        else:
            response.add(found)
    return response


class Worklist:
    def __init__(self, store: Store) -> None:
        self._collection = store[COLLECTION]

    async def create(self, body: dict[str, Any], facility: str, created_by: str) -> Document:
        doc = new_document(body, facility, created_by, time.time())
        await self._collection.insert_one(doc)
        return doc

    async def listing(
        self, facility: str | None, status: str | None, limit: int, offset: int
    ) -> list[Document]:
        query: Document = {}
        if facility is not None:
            query["facility"] = facility
        if status is not None:
            query["status"] = status
        cursor = (
            self._collection.find(query)
            .sort([("step.start_date", 1), ("step.start_time", 1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def get(self, step_id: str, facility: str | None) -> Document | None:
        query: Document = {"_id": step_id}
        if facility is not None:
            query["facility"] = facility
        return await self._collection.find_one(query)

    async def cancel(self, step_id: str, facility: str | None) -> Document | None:
        """Cancel a step still waiting; one already performed is left as it is."""
        query: Document = {"_id": step_id, "status": OFFERED}
        if facility is not None:
            query["facility"] = facility
        result = await self._collection.update_one(
            query, {"$set": {"status": "cancelled", "updated_at": time.time()}}
        )
        if result.matched_count == 0:
            return None
        return await self.get(step_id, facility)

    async def find(self, keys: dict[str, str], facility: str | None) -> list[Document]:
        cursor = self._collection.find(build_filter(keys, facility)).limit(1000)
        return [doc async for doc in cursor]

    async def mark(self, study_uids: list[str], accessions: list[str], status: str) -> None:
        """MPPS progress reaches the steps it performs."""
        clauses: list[Document] = []
        if study_uids:
            clauses.append({"study_instance_uid": {"$in": study_uids}})
        if accessions:
            clauses.append({"accession_number": {"$in": accessions}})
        for clause in clauses:
            await self._collection.update_many(
                {**clause, "status": {"$in": [OFFERED, "in_progress"]}},
                {"$set": {"status": status, "updated_at": time.time()}},
            )

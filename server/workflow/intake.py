"""What the DICOM gateway tells the workflow: images stored, a study gone quiet, MPPS progress.

The gateway publishes on the hub; this module matches each event to a worklist row by accession
number first (what the modality copied from the worklist), then by Study Instance UID, and
creates an unscheduled row when neither matches. Expected ``event.data`` (snake_case, the
DICOM keyword form such as ``StudyInstanceUID`` is accepted too):

    dicom.instance.stored  study_instance_uid (required), accession_number, patient_id,
                           patient_name, patient_birth_date, patient_sex, modality,
                           referring_physician
    dicom.study.stable     study_instance_uid (required), accession_number, instances
    dicom.mpps.updated     status ("IN PROGRESS" | "COMPLETED" | "DISCONTINUED"),
                           study_instance_uid and/or accession_number

``event.facility`` names the facility (the default facility if absent). A malformed event is
logged and dropped: nothing is written for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from server.auth.users import DEFAULT_FACILITY
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub, Unsubscribe
from server.store.database import Document
from server.workflow import events
from server.workflow.status import SYSTEM, Priority, Status, allowed
from server.workflow.studies import NewStudy, Studies

log = logging.getLogger(__name__)

MPPS_STATES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ALIASES = {
    "study_instance_uid": "StudyInstanceUID",
    "accession_number": "AccessionNumber",
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "modality": "Modality",
    "referring_physician": "ReferringPhysicianName",
    "status": "PerformedProcedureStepStatus",
}


class MalformedEvent(ValueError):
    """A gateway event lacks what the workflow needs; it is dropped, nothing is written."""


def field(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name, data.get(_ALIASES.get(name, name)))
    if value is None:
        return None
    text = str(value).strip()
    return text[:128] or None


def study_uid(data: Mapping[str, Any], required: bool = True) -> str | None:
    uid = field(data, "study_instance_uid")
    if uid is None:
        if required:
            raise MalformedEvent("study_instance_uid is missing")
        return None
    if len(uid) > 64 or not _UID.match(uid):
        raise MalformedEvent(f"study_instance_uid {uid!r} is not a UID")
    return uid


class Intake:
    def __init__(self, studies: Studies) -> None:
        self._studies = studies

    def subscribe(self, hub: EventHub) -> list[Unsubscribe]:
        return [
            hub.subscribe(events.DICOM_INSTANCE_STORED, self._guard(self.instance_stored)),
            hub.subscribe(events.DICOM_STUDY_STABLE, self._guard(self.study_stable)),
            hub.subscribe(events.DICOM_MPPS_UPDATED, self._guard(self.mpps_updated)),
        ]

    def _guard(self, handler: Any) -> Any:
        async def run(event: DomainEvent) -> None:
            try:
                await handler(event)
            except MalformedEvent as exc:
                log.warning("dropped %s event: %s", event.topic, exc)

        return run

    async def _find(self, data: Mapping[str, Any], uid: str | None) -> Document | None:
        accession = field(data, "accession_number")
        if accession:
            doc = await self._studies.by_accession(accession)
            if doc is not None:
                return doc
        return await self._studies.by_study_uid(uid) if uid else None

    async def _find_or_create(self, event: DomainEvent, status: Status) -> Document:
        data = event.data
        uid = study_uid(data)
        doc = await self._find(data, uid)
        if doc is not None:
            return doc
        new = NewStudy(
            facility=event.facility or DEFAULT_FACILITY,
            accession_number=field(data, "accession_number"),
            study_instance_uid=uid,
            patient_id=field(data, "patient_id") or "",
            patient_name=field(data, "patient_name") or "",
            patient_birth_date=field(data, "patient_birth_date"),
            patient_sex=field(data, "patient_sex"),
            modality=field(data, "modality"),
            referring_physician=None,
            priority=Priority.ROUTINE,
            status=status,
            unscheduled=True,
        )
        try:
            return await self._studies.create(new, SYSTEM)
        except ApiError as exc:
            # Another association created the row for this study a moment ago.
            again = await self._find(data, uid)
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
        doc = await self._find_or_create(event, Status.ARRIVED)
        uid = study_uid(event.data)
        changes: Document = {"$inc": {"images": 1}}
        if uid and doc["study_instance_uid"] != uid:
            # The modality ignored the UID the worklist offered; the images' UID is the truth.
            changes["$set"] = {"study_instance_uid": uid}
        try:
            await self._studies.collection.update_one({"_id": doc["_id"]}, changes)
        except DuplicateKeyError:
            log.warning("study %s: images carry a UID another study already has", doc["_id"])
        if doc["status"] == Status.SCHEDULED.value:
            await self._advance(doc, Status.ARRIVED, "images arrived")

    async def study_stable(self, event: DomainEvent) -> None:
        doc = await self._find_or_create(event, Status.ARRIVED)
        if doc["status"] in (Status.SCHEDULED.value, Status.ARRIVED.value):
            await self._advance(doc, Status.UNREAD, "study complete")

    async def mpps_updated(self, event: DomainEvent) -> None:
        data = event.data
        uid = study_uid(data, required=False)
        if uid is None and field(data, "accession_number") is None:
            raise MalformedEvent("MPPS event names neither a study nor an accession number")
        status = (field(data, "status") or "").upper()
        if status not in MPPS_STATES:
            raise MalformedEvent(f"MPPS status {status!r} is not one of {MPPS_STATES}")
        doc = await self._find(data, uid)
        if doc is None:
            if uid is None:
                raise MalformedEvent("MPPS for an unknown accession number without a study UID")
            doc = await self._find_or_create(event, Status.ARRIVED)
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

"""Orders: what a RIS (or a technician) asks for, kept as a worklist row plus a scheduled step.

An order is a worklist row in status ``scheduled`` and one document in ``scheduled_procedures``,
the collection the DICOM gateway's Modality Worklist SCP answers from (``server/dicom/worklist.py``
documents the shape; ``scheduled_step`` below writes exactly that shape). The step's ``_id``
(the Scheduled Procedure Step ID) is the accession number. Only ``scheduled`` steps are offered
to modalities; cancelling an order sets the step to ``cancelled``; MPPS moves it on (the gateway
does that). Step dates and times are local to the facility (the time zone of its profile in
``facility_profiles``; UTC when unset), because modalities match them as local values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.auth.service import Principal
from server.auth.tokens import Clock
from server.http.errors import ApiError
from server.store.database import Document, IndexSpec, Store
from server.workflow.status import Priority, Status
from server.workflow.studies import NewStudy, Studies, actor_of, search_text

COLLECTION = "scheduled_procedures"
PROFILES = "facility_profiles"
# The gateway declares its own indexes on this collection; this one serves the order lookups.
INDEXES = [IndexSpec(COLLECTION, [("accession_number", 1)])]
STEP_SCHEDULED = "scheduled"
STEP_CANCELLED = "cancelled"
DICOM_PRIORITY = {Priority.STAT: "STAT", Priority.URGENT: "HIGH", Priority.ROUTINE: "ROUTINE"}


def parse_time(raw: str, name: str) -> float:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError("validation_failed", f"{name} must be an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ApiError("validation_failed", f"{name} must carry a time zone (e.g. Z or +01:00)")
    return value.timestamp()


def zone_of(name: str | None) -> tzinfo | None:
    """An IANA time zone, or None for a name the system does not know."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def scheduled_step(
    doc: Mapping[str, Any], now: float, created_by: str, zone: tzinfo = UTC
) -> Document:
    """The MWL document for a worklist row, in the gateway's ``scheduled_procedures`` shape.
    Modalities match step dates and times as local values, so they are the facility's."""
    when = doc.get("scheduled_at")
    moment = datetime.fromtimestamp(when if when is not None else now, zone)
    return {
        "_id": doc["accession_number"],
        "facility": doc["facility"],
        "status": STEP_SCHEDULED,
        "patient": {
            "name": doc["patient_name"],
            "name_lc": doc["patient_name"].lower(),
            "id": doc["patient_id"],
            "birth_date": doc.get("patient_birth_date"),
            "sex": doc.get("patient_sex"),
        },
        "accession_number": doc["accession_number"],
        "requested_procedure_id": doc["accession_number"],
        "requested_procedure_description": doc.get("requested_procedure") or "",
        "study_instance_uid": doc["study_instance_uid"],
        "referring_physician": doc.get("referring_physician"),
        "step": {
            "station_ae_title": doc.get("scheduled_station_ae"),
            "modality": doc.get("modality") or "",
            "start_date": moment.strftime("%Y%m%d"),
            "start_time": moment.strftime("%H%M%S"),
            "description": doc.get("requested_procedure") or "",
            "performing_physician": None,
        },
        "priority": DICOM_PRIORITY[Priority(doc["priority"])],
        "body_part": doc.get("body_part"),
        "study_id": doc["_id"],
        "created_at": doc["created_at"],
        "updated_at": now,
        "created_by": created_by,
    }


class Orders:
    def __init__(self, store: Store, studies: Studies, clock: Clock) -> None:
        self.steps = store[COLLECTION]
        self.profiles = store[PROFILES]
        self._studies = studies
        self._clock = clock

    def _facility(self, body: Mapping[str, Any], principal: Principal) -> str:
        facility = str(body.get("facility") or principal.facility)
        if not principal.may_access_facility(facility):
            raise ApiError("forbidden", "You may only order studies for your own facility.")
        return facility

    async def create(self, body: Mapping[str, Any], principal: Principal) -> Document:
        patient = body["patient"]
        new = NewStudy(
            facility=self._facility(body, principal),
            accession_number=body.get("accession_number"),
            patient_id=patient["id"],
            patient_name=patient["name"],
            patient_birth_date=patient.get("birth_date"),
            patient_sex=patient.get("sex"),
            modality=body["modality"],
            body_part=body.get("body_part"),
            requested_procedure=body["requested_procedure"],
            scheduled_station_ae=body.get("scheduled_station_ae"),
            scheduled_at=parse_time(body["scheduled_at"], "scheduled_at"),
            referring_physician=body.get("referring_physician"),
            priority=Priority(body.get("priority", Priority.ROUTINE.value)),
            status=Status.SCHEDULED,
        )
        doc = await self._studies.create(new, principal.username)
        step = scheduled_step(
            doc, self._clock().timestamp(), principal.username, await self._zone(doc)
        )
        await self.steps.replace_one({"_id": step["_id"]}, step, upsert=True)
        return doc

    async def update(
        self, accession: str, body: Mapping[str, Any], principal: Principal
    ) -> Document:
        doc = await self._order(accession, principal)
        if doc["status"] != Status.SCHEDULED.value:
            raise ApiError(
                "invalid_transition",
                f"Only scheduled orders can be changed; this one is {doc['status']}.",
            )
        changes: Document = {}
        patient = body.get("patient") or {}
        for key, field in (
            ("id", "patient_id"),
            ("name", "patient_name"),
            ("birth_date", "patient_birth_date"),
            ("sex", "patient_sex"),
        ):
            if key in patient:
                changes[field] = patient[key]
        for field in (
            "modality",
            "body_part",
            "requested_procedure",
            "scheduled_station_ae",
            "referring_physician",
        ):
            if field in body:
                changes[field] = body[field]
        if "scheduled_at" in body:
            changes["scheduled_at"] = parse_time(body["scheduled_at"], "scheduled_at")
            changes["study_at"] = changes["scheduled_at"]
        if changes:
            merged = {**doc, **changes}
            changes["search"] = search_text(
                merged["patient_name"], merged["patient_id"], merged["accession_number"]
            )
            doc = await self._studies.update_fields(
                doc, changes, actor=principal.username, action="order.update"
            )
        if "priority" in body and body["priority"] != doc["priority"]:
            doc = await self._studies.set_priority(
                doc, Priority(body["priority"]), actor=principal.username
            )
        step = scheduled_step(
            doc, self._clock().timestamp(), principal.username, await self._zone(doc)
        )
        await self.steps.replace_one(
            {"_id": step["_id"], "status": STEP_SCHEDULED}, step, upsert=False
        )
        return doc

    async def cancel(self, accession: str, principal: Principal, reason: str | None) -> Document:
        doc = await self._order(accession, principal)
        doc = await self._studies.transition(
            doc["_id"],
            Status.CANCELLED,
            actor_role=actor_of(principal),
            actor_name=principal.username,
            reason=reason,
        )
        await self.steps.update_one(
            {"_id": accession},
            {
                "$set": {
                    "status": STEP_CANCELLED,
                    "updated_at": self._clock().timestamp(),
                }
            },
        )
        return doc

    async def _zone(self, doc: Mapping[str, Any]) -> tzinfo:
        profile = await self.profiles.find_one({"_id": doc["facility"]}, {"timezone": 1})
        return zone_of((profile or {}).get("timezone")) or UTC

    async def _order(self, accession: str, principal: Principal) -> Document:
        doc = await self._studies.by_accession(accession)
        if doc is None or not principal.may_access_facility(doc["facility"]):
            raise ApiError("not_found", f"No order with accession number {accession!r}.")
        return doc

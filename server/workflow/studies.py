"""The worklist: one document per study with its status, priority, assignment, claim and due time.

Collection ``worklist_items`` (owned here). Fields are flat so that every worklist filter is an
indexed equality or range: ``facility``, ``status``, ``priority_rank`` (0 = STAT), ``created_at``,
``assigned_to``, ``claimed_by``, ``owners`` (both of those, for "mine"), ``due_at``,
``study_at``, ``accession_number`` (unique), ``study_instance_uid`` (unique),
``referring_physician``, ``invited``, ``report_readers`` (both of those) and ``search``
(lowercased patient name, patient ID and accession number for free-text search). Times are
epoch floats.

Every change is a conditional update on the version read (and the status it moves from), so
two nodes or two readers racing never both win; the loser gets a clear 409. Each change is
persisted first, then audited, then published.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from server.auth.audit import AuditLog
from server.auth.roles import Role
from server.auth.service import Principal
from server.auth.tokens import Clock
from server.http.errors import ApiError
from server.store.database import Document, IndexSpec, Store
from server.workflow import events
from server.workflow.events import Publisher, iso
from server.workflow.status import (
    AWAITING_REPORT,
    CLAIMABLE,
    PRIORITY_RANK,
    SYSTEM,
    TURNAROUND_S,
    Priority,
    Status,
    check_transition,
)

COLLECTION = "worklist_items"
INDEXES = [
    IndexSpec(COLLECTION, [("accession_number", 1)], unique=True),
    IndexSpec(COLLECTION, [("study_instance_uid", 1)], unique=True),
    IndexSpec(COLLECTION, [("facility", 1), ("priority_rank", 1), ("created_at", 1)]),
    IndexSpec(COLLECTION, [("facility", 1), ("status", 1), ("priority_rank", 1)]),
    IndexSpec(COLLECTION, [("facility", 1), ("assigned_to", 1), ("priority_rank", 1)]),
    IndexSpec(COLLECTION, [("facility", 1), ("owners", 1), ("priority_rank", 1)]),
    IndexSpec(COLLECTION, [("facility", 1), ("due_at", 1)]),
    IndexSpec(COLLECTION, [("claim_expires_at", 1)]),
    IndexSpec(COLLECTION, [("report_readers", 1), ("reported_at", -1)]),
]

CLAIM_TTL_S = 30 * 60.0
_MAX_RETRIES = 5


def new_study_uid() -> str:
    """A UID under the UUID-derived root 2.25, so no registered org root is needed."""
    return f"2.25.{uuid.uuid4().int}"


def new_accession() -> str:
    """Accession numbers are DICOM SH (16 characters at most)."""
    return "NX" + uuid.uuid4().hex[:14].upper()


def search_text(patient_name: str, patient_id: str, accession: str) -> str:
    return " ".join((patient_name.replace("^", " "), patient_id, accession)).lower()


def derived(row: Mapping[str, Any]) -> Document:
    """Lists kept beside the fields they come from, so "mine" and "reports I may read" are one
    indexed equality each instead of an ``$or``, which the embedded store answers by scanning
    every row. Recomputed on every write that can change their sources."""
    owners = {row.get("assigned_to"), row.get("claimed_by")}
    readers = {row.get("referring_physician"), *(row.get("invited") or [])}
    return {
        "owners": sorted(o for o in owners if o),
        "report_readers": sorted(r for r in readers if r),
    }


def actor_of(principal: Principal) -> str:
    return principal.role.value


def is_overdue(doc: Mapping[str, Any], now: float) -> bool:
    due = doc.get("due_at")
    return due is not None and due < now and doc.get("status") in AWAITING_REPORT


def public(doc: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The wire form of a worklist row (HTTP answers and ``worklist.changed`` alike)."""
    return {
        "id": doc["_id"],
        "facility": doc["facility"],
        "accession_number": doc["accession_number"],
        "study_instance_uid": doc["study_instance_uid"],
        "patient_id": doc["patient_id"],
        "patient_name": doc["patient_name"],
        "patient_birth_date": doc.get("patient_birth_date"),
        "patient_sex": doc.get("patient_sex"),
        "modality": doc.get("modality"),
        "body_part": doc.get("body_part"),
        "requested_procedure": doc.get("requested_procedure"),
        "scheduled_station_ae": doc.get("scheduled_station_ae"),
        "scheduled_at": iso(doc.get("scheduled_at")),
        "referring_physician": doc.get("referring_physician"),
        "priority": doc["priority"],
        "status": doc["status"],
        "status_at": iso(doc["status_at"]),
        "created_at": iso(doc["created_at"]),
        "arrived_at": iso(doc.get("arrived_at")),
        "due_at": iso(doc.get("due_at")),
        "overdue": is_overdue(doc, now),
        "assigned_to": doc.get("assigned_to"),
        "claimed_by": doc.get("claimed_by"),
        "claim_expires_at": iso(doc.get("claim_expires_at")),
        "unscheduled": bool(doc.get("unscheduled", False)),
        "images": int(doc.get("images", 0)),
        "mpps_status": doc.get("mpps_status"),
        "open_alerts": int(doc.get("open_alerts", 0)),
        "version": int(doc["version"]),
    }


@dataclass(frozen=True)
class NewStudy:
    facility: str
    patient_id: str
    patient_name: str
    priority: Priority
    status: Status
    accession_number: str | None = None
    study_instance_uid: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    modality: str | None = None
    body_part: str | None = None
    requested_procedure: str | None = None
    scheduled_station_ae: str | None = None
    scheduled_at: float | None = None
    referring_physician: str | None = None
    unscheduled: bool = False


class Studies:
    """The worklist rows and every change to them."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        audit: AuditLog,
        clock: Clock,
        claim_ttl_s: float = CLAIM_TTL_S,
    ) -> None:
        self.collection = store[COLLECTION]
        self._publisher = publisher
        self._audit = audit
        self._clock = clock
        self.claim_ttl_s = claim_ttl_s

    @property
    def audit(self) -> AuditLog:
        return self._audit

    def now(self) -> float:
        return self._clock().timestamp()

    # -- reading ---------------------------------------------------------------------------

    async def get(self, study_id: str) -> Document:
        doc = await self.collection.find_one({"_id": study_id})
        if doc is None:
            raise ApiError("not_found", f"No study {study_id!r}.")
        return doc

    async def visible(self, study_id: str, principal: Principal) -> Document:
        """The study if this caller may see it; another facility's study is simply not found."""
        doc = await self.get(study_id)
        if not principal.may_access_facility(doc["facility"]):
            raise ApiError("not_found", f"No study {study_id!r}.")
        return doc

    async def by_accession(self, accession: str) -> Document | None:
        return await self.collection.find_one({"accession_number": accession})

    async def by_study_uid(self, uid: str) -> Document | None:
        return await self.collection.find_one({"study_instance_uid": uid})

    async def study_facility(self, study_uid: str) -> str | None:
        """The rooms' ``StudyDirectory`` question, answered from the worklist (it knows ordered
        studies before their first image, and every study that arrived since)."""
        doc = await self.collection.find_one({"study_instance_uid": study_uid}, {"facility": 1})
        return str(doc["facility"]) if doc else None

    # -- creating --------------------------------------------------------------------------

    async def create(self, new: NewStudy, actor: str) -> Document:
        now = self.now()
        accession = new.accession_number or new_accession()
        arrived = new.status not in (Status.SCHEDULED, Status.CANCELLED)
        doc: Document = {
            "_id": uuid.uuid4().hex,
            "facility": new.facility,
            "accession_number": accession,
            "study_instance_uid": new.study_instance_uid or new_study_uid(),
            "patient_id": new.patient_id,
            "patient_name": new.patient_name,
            "patient_birth_date": new.patient_birth_date,
            "patient_sex": new.patient_sex,
            "modality": new.modality,
            "body_part": new.body_part,
            "requested_procedure": new.requested_procedure,
            "scheduled_station_ae": new.scheduled_station_ae,
            "scheduled_at": new.scheduled_at,
            "study_at": new.scheduled_at if new.scheduled_at is not None else now,
            "referring_physician": new.referring_physician,
            "invited": [],
            "priority": new.priority.value,
            "priority_rank": PRIORITY_RANK[new.priority],
            "status": new.status.value,
            "status_at": now,
            "created_at": now,
            "updated_at": now,
            "arrived_at": now if arrived else None,
            "due_at": now + TURNAROUND_S[new.priority] if arrived else None,
            "overdue_alerted": False,
            "assigned_to": None,
            "claimed_by": None,
            "claim_expires_at": None,
            "unscheduled": new.unscheduled,
            "images": 0,
            "mpps_status": None,
            "open_alerts": 0,
            "search": search_text(new.patient_name, new.patient_id, accession),
            "version": 1,
        }
        doc.update(derived(doc))
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise ApiError(
                "conflict",
                f"A study with accession number {accession!r} or that Study Instance UID exists.",
            ) from None
        await self._audit.record(
            actor=actor,
            action="study.create",
            outcome="success",
            target=doc["_id"],
            facility=doc["facility"],
            details={"accession_number": accession, "status": doc["status"]},
        )
        await self._changed(doc, "created")
        return doc

    # -- changing --------------------------------------------------------------------------

    async def update_fields(
        self,
        doc: Document,
        changes: Mapping[str, Any],
        *,
        actor: str,
        action: str,
        retry: bool = False,
    ) -> Document:
        """Set plain fields on a row, conditional on the version read, and publish.

        A person's change answers 409 when the row moved meanwhile (they saw an old row). The
        server's own changes (``retry``), whose values do not depend on what else moved, are
        re-applied to the fresh row instead, so unrelated churn never loses them.
        """
        for _ in range(_MAX_RETRIES if retry else 1):
            fields = dict(changes)
            fields["updated_at"] = self.now()
            updated = await self._write_if_unchanged(doc, fields)
            if updated is not None:
                break
            doc = await self.get(doc["_id"])
        else:
            raise ApiError("stale_version", "The study changed meanwhile; reload and try again.")
        await self._audit.record(
            actor=actor,
            action=action,
            outcome="success",
            target=doc["_id"],
            facility=doc["facility"],
            details={k: v for k, v in changes.items() if k != "search"},
        )
        await self._changed(updated, action)
        return updated

    async def transition(
        self,
        study_id: str,
        target: Status,
        *,
        actor_role: str,
        actor_name: str,
        extra: Mapping[str, Any] | None = None,
        expect: Callable[[Document], None] | None = None,
        reason: str | None = None,
    ) -> Document:
        """Move a study to ``target`` if the table allows it for this actor, atomically.

        ``expect`` runs on the current document before the write (e.g. "you hold the claim") and
        again on a retry, so a precondition can never be checked against a stale read.
        """
        for _ in range(_MAX_RETRIES):
            doc = await self.get(study_id)
            current = Status(doc["status"])
            check_transition(current, target, actor_role)
            if expect is not None:
                expect(doc)
            now = self.now()
            fields: Document = {"status": target.value, "status_at": now, "updated_at": now}
            if target in AWAITING_REPORT and doc.get("arrived_at") is None:
                fields["arrived_at"] = now
                fields["due_at"] = now + TURNAROUND_S[Priority(doc["priority"])]
            if target in (Status.FINAL, Status.CANCELLED):
                fields.update(claimed_by=None, claim_expires_at=None)
            if target is Status.FINAL and doc.get("reported_at") is None:
                fields["reported_at"] = now
            fields.update(extra or {})
            fields.update(derived({**doc, **fields}))
            updated = await self.collection.find_one_and_update(
                {"_id": study_id, "status": current.value, "version": doc["version"]},
                {"$set": fields, "$inc": {"version": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if updated is None:
                continue
            await self._audit.record(
                actor=actor_name,
                action="study.status",
                outcome="success",
                target=study_id,
                facility=doc["facility"],
                details={"from": current.value, "to": target.value, "reason": reason},
            )
            await self._status_event(doc, current, target, actor_name, now)
            await self._changed(updated, "status")
            return updated
        raise ApiError("stale_version", "The study kept changing; reload and try again.")

    async def set_status(
        self, study_id: str, target: Status, principal: Principal, reason: str | None
    ) -> Document:
        """A status change asked for directly. Moves that belong to a step with its own rules
        are refused here and named: reading is a claim, final a signature, amended an addendum,
        back to unread a release; preliminary needs the claim."""
        doc = await self.visible(study_id, principal)
        current = Status(doc["status"])
        owned = {
            Status.READING: "claim the study",
            Status.FINAL: "sign the report",
            Status.AMENDED: "sign an addendum",
        }
        if target in owned:
            raise ApiError("invalid_transition", f"To make a study {target}, {owned[target]}.")
        if current is Status.READING and target is Status.UNREAD:
            raise ApiError("invalid_transition", "To put a study back, release the claim.")
        expect = None
        if target is Status.PRELIMINARY:

            def expect(current_doc: Document) -> None:
                if self.require_claim(current_doc, principal):
                    raise ApiError("claim_required", "Claim the study to mark it preliminary.")

        return await self.transition(
            study_id,
            target,
            actor_role=actor_of(principal),
            actor_name=principal.username,
            reason=reason,
            expect=expect,
        )

    async def set_priority(
        self,
        doc: Document,
        priority: Priority,
        *,
        actor: str,
        reason: str | None = None,
        retry: bool = False,
    ) -> Document:
        changes: Document = {"priority": priority.value, "priority_rank": PRIORITY_RANK[priority]}
        if doc.get("arrived_at") is not None:
            changes["due_at"] = doc["arrived_at"] + TURNAROUND_S[priority]
            changes["overdue_alerted"] = False
        if reason:
            changes["priority_reason"] = reason
        return await self.update_fields(
            doc, changes, actor=actor, action="study.priority", retry=retry
        )

    # -- claims ----------------------------------------------------------------------------

    async def claim(self, study_id: str, principal: Principal) -> Document:
        """Take (or renew) the one claim on a study; exactly one of two racing readers wins."""
        for _ in range(_MAX_RETRIES):
            doc = await self.visible(study_id, principal)
            current = Status(doc["status"])
            if current not in CLAIMABLE:
                raise ApiError(
                    "invalid_transition", f"A study that is {current.value} cannot be claimed."
                )
            now = self.now()
            self._check_free(doc, principal.username, now)
            fields: Document = {
                "claimed_by": principal.username,
                "claimed_at": now,
                "claim_expires_at": now + self.claim_ttl_s,
                "updated_at": now,
            }
            if current is Status.UNREAD:
                check_transition(current, Status.READING, actor_of(principal))
                fields.update(status=Status.READING.value, status_at=now)
            # Conditional on the version read: the claim checked free above is still free, so
            # of two racing readers exactly one write matches.
            updated = await self._write_if_unchanged(doc, fields)
            if updated is None:
                continue
            renewed = doc.get("claimed_by") == principal.username
            await self._audit.record(
                actor=principal.username,
                action="claim.renew" if renewed else "claim.take",
                outcome="success",
                target=study_id,
                facility=doc["facility"],
                details={"previous": doc.get("claimed_by")},
            )
            if current is Status.UNREAD:
                await self._status_event(doc, current, Status.READING, principal.username, now)
            await self._changed(updated, "claim")
            return updated
        raise ApiError("stale_version", "The study kept changing; try again.")

    def _check_free(self, doc: Mapping[str, Any], username: str, now: float) -> None:
        holder = doc.get("claimed_by")
        expires = doc.get("claim_expires_at")
        if holder and holder != username and expires is not None and expires >= now:
            raise ApiError(
                "already_claimed",
                f"{holder} has claimed this study until {iso(expires)}.",
                details={"claimed_by": holder, "claim_expires_at": iso(expires)},
            )

    def require_claim(self, doc: Mapping[str, Any], principal: Principal) -> bool:
        """Pass if the caller holds a live claim; admins pass too, and the caller must audit it.

        Returns whether this was an admin override.
        """
        holder = doc.get("claimed_by")
        expires = doc.get("claim_expires_at")
        live = holder is not None and expires is not None and expires >= self.now()
        if live and holder == principal.username:
            return False
        if principal.role is Role.ADMIN:
            return True
        if live:
            raise ApiError(
                "already_claimed", f"{holder} holds the claim on this study.", status=403
            )
        raise ApiError("claim_required", "Claim the study before signing or releasing it.")

    async def release(self, study_id: str, principal: Principal) -> Document:
        for _ in range(_MAX_RETRIES):
            doc = await self.visible(study_id, principal)
            if doc.get("claimed_by") is None:
                raise ApiError("claim_required", "Nobody holds a claim on this study.")
            override = self.require_claim(doc, principal)
            current = Status(doc["status"])
            now = self.now()
            fields: Document = {"claimed_by": None, "claim_expires_at": None, "updated_at": now}
            if current is Status.READING:
                check_transition(current, Status.UNREAD, actor_of(principal))
                fields.update(status=Status.UNREAD.value, status_at=now)
            updated = await self._write_if_unchanged(doc, fields)
            if updated is None:
                continue
            await self._audit.record(
                actor=principal.username,
                action="claim.release.override" if override else "claim.release",
                outcome="success",
                target=study_id,
                facility=doc["facility"],
                details={"claimed_by": doc.get("claimed_by")},
            )
            if current is Status.READING:
                await self._status_event(doc, current, Status.UNREAD, principal.username, now)
            await self._changed(updated, "claim")
            return updated
        raise ApiError("stale_version", "The study kept changing; reload and try again.")

    async def expire_claims(self, limit: int = 200) -> int:
        """Give abandoned claims back to the queue; one bounded pass, for the background tick."""
        now = self.now()
        cursor = self.collection.find({"claim_expires_at": {"$lt": now}}).limit(limit)
        expired = [doc async for doc in cursor]
        count = 0
        for doc in expired:
            fields: Document = {"claimed_by": None, "claim_expires_at": None, "updated_at": now}
            back_to_queue = doc["status"] == Status.READING.value
            if back_to_queue:
                check_transition(Status.READING, Status.UNREAD, SYSTEM)
                fields.update(status=Status.UNREAD.value, status_at=now)
            updated = await self._write_if_unchanged(doc, fields)
            if updated is None:
                continue
            count += 1
            await self._audit.record(
                actor=SYSTEM,
                action="claim.expire",
                outcome="success",
                target=doc["_id"],
                facility=doc["facility"],
                details={"claimed_by": doc.get("claimed_by")},
            )
            if back_to_queue:
                await self._status_event(doc, Status.READING, Status.UNREAD, SYSTEM, now)
            await self._changed(updated, "claim")
        return count

    async def _write_if_unchanged(self, doc: Document, fields: Document) -> Document | None:
        """Write `fields` (and what derives from them) only if the row is still at `doc`'s version.

        Every write bumps the version, so a stale read matches nothing and the caller decides
        whether to retry on the fresh row or to answer 409.
        """
        fields = {**fields, **derived({**doc, **fields})}
        updated: Document | None = await self.collection.find_one_and_update(
            {"_id": doc["_id"], "version": doc["version"]},
            {"$set": fields, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return updated

    # -- publishing ------------------------------------------------------------------------

    async def _status_event(
        self, doc: Mapping[str, Any], current: Status, target: Status, by: str, now: float
    ) -> None:
        await self._publisher.publish(
            events.STATUS_CHANGED,
            {
                "study_id": doc["_id"],
                "accession_number": doc["accession_number"],
                "from": current.value,
                "to": target.value,
                "by": by,
                "at": iso(now),
            },
            doc["facility"],
        )

    async def _changed(self, doc: Mapping[str, Any], change: str) -> None:
        await self._publisher.publish(
            events.WORKLIST_CHANGED,
            {"change": change, "study": public(doc, self.now())},
            doc["facility"],
        )

    async def changed(self, doc: Mapping[str, Any], change: str) -> None:
        """Publish a row that another service (alerts) changed."""
        await self._changed(doc, change)

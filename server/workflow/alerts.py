"""Alerts: raised by AI findings and overdue studies, acknowledged, resolved or escalated, and
escalated by the clock when nobody acknowledges them in time.

Collection ``alerts``; the wire form is ``#/$defs/alert`` of ``shared/protocol/events/alerts.json``
(rooms/ delivers ``alert.raised`` / ``alert.updated`` and applies Socket.IO actions, publishing
``alert.updated`` with ``source == "rooms"``, which this module mirrors). Every change is a
conditional update on ``version``, so a reader acknowledging while the clock escalates ends with
exactly one of the two, never a mix. ``escalate_at`` is when an unacknowledged alert escalates;
escalation hands it to the next reader on duty (first level) and then to an admin, notifying each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pymongo import ReturnDocument

from server.auth.roles import Role
from server.auth.service import Principal
from server.auth.tokens import Clock
from server.auth.users import Users
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub, Unsubscribe
from server.store.database import Document, IndexSpec, Store
from server.workflow import events
from server.workflow.events import Publisher
from server.workflow.notifications import Notifications
from server.workflow.status import AWAITING_REPORT, Priority
from server.workflow.studies import Studies

log = logging.getLogger(__name__)

COLLECTION = "alerts"
INDEXES = [
    IndexSpec(COLLECTION, [("facility", 1), ("status", 1), ("raised_at", -1)]),
    IndexSpec(COLLECTION, [("study_id", 1), ("status", 1)]),
    IndexSpec(COLLECTION, [("status", 1), ("escalate_at", 1)]),
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
ACTIVE = ("open", "escalated")
# How long an alert may wait for an acknowledgement before it escalates, by severity.
ESCALATION_WINDOW_S: dict[str, float] = {"critical": 300.0, "warning": 900.0, "info": 3600.0}
MAX_LEVEL = 3
# Triage: what a finding of each severity does to the study's priority.
PRIORITY_FOR: dict[str, Priority | None] = {
    "critical": Priority.STAT,
    "warning": Priority.URGENT,
    "info": None,
}
ACTIONS = ("acknowledge", "resolve", "escalate")


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "study_uid": doc["study_uid"],
        "study_id": doc["study_id"],
        "facility": doc["facility"],
        "kind": doc["kind"],
        "severity": doc["severity"],
        "status": doc["status"],
        "title": doc["title"],
        "message": doc["message"],
        "assigned_to": doc.get("assigned_to"),
        "assigned_user_id": doc.get("assigned_user_id"),
        "escalation_level": int(doc.get("escalation_level", 0)),
        "version": int(doc["version"]),
        "raised_at": doc["raised_at"],
        "updated_at": doc["updated_at"],
        "updated_by": doc.get("updated_by"),
        "note": doc.get("note"),
        "source": doc["source"],
        "finding_id": doc.get("finding_id"),
    }


class Alerts:
    def __init__(
        self,
        store: Store,
        studies: Studies,
        users: Users,
        notifications: Notifications,
        publisher: Publisher,
        clock: Clock,
    ) -> None:
        self.collection = store[COLLECTION]
        self._studies = studies
        self._users = users
        self._notifications = notifications
        self._publisher = publisher
        self._clock = clock

    def now(self) -> float:
        return self._clock().timestamp()

    async def raise_alert(
        self,
        study: Document,
        *,
        kind: str,
        severity: Severity,
        title: str,
        message: str,
        source: str,
        finding_id: str | None = None,
    ) -> Document:
        now = self.now()
        assignee = study.get("claimed_by") or study.get("assigned_to")
        doc: Document = {
            "_id": "al_" + uuid.uuid4().hex,
            "study_id": study["_id"],
            "study_uid": study["study_instance_uid"],
            "facility": study["facility"],
            "kind": kind,
            "severity": severity,
            "status": "open",
            "title": title[:200],
            "message": message[:2000],
            "assigned_to": assignee,
            "assigned_user_id": await self._user_id(assignee),
            "escalation_level": 0,
            "version": 1,
            "raised_at": now,
            "updated_at": now,
            "updated_by": None,
            "note": None,
            "source": source[:32],
            "finding_id": finding_id,
            "escalate_at": now + ESCALATION_WINDOW_S[severity],
            "acknowledged_at": None,
            "resolved_at": None,
            "notified": [],
        }
        await self.collection.insert_one(doc)
        await self._publisher.publish(events.ALERT_RAISED, public(doc), doc["facility"])
        if doc["assigned_to"]:
            await self._notify(doc, doc["assigned_to"], "alert")
        await self._sync_study(doc["study_id"])
        return doc

    async def get(self, alert_id: str, principal: Principal) -> Document:
        doc = await self.collection.find_one({"_id": alert_id})
        if doc is None or not principal.may_access_facility(doc["facility"]):
            raise ApiError("not_found", f"No alert {alert_id!r}.")
        return doc

    async def act(
        self, alert_id: str, action: str, principal: Principal, note: str | None
    ) -> Document:
        if action not in ACTIONS:
            raise ApiError("not_found", f"Unknown alert action {action!r}.")
        doc = await self.get(alert_id, principal)
        actor = {"user_id": principal.user_id, "username": principal.username}
        if action == "acknowledge":
            if doc["status"] not in ACTIVE:
                raise ApiError("invalid_transition", f"The alert is already {doc['status']}.")
            changes: Document = {"status": "acknowledged", "acknowledged_at": self.now()}
        elif action == "resolve":
            if doc["status"] == "resolved":
                raise ApiError("invalid_transition", "The alert is already resolved.")
            changes = {"status": "resolved", "resolved_at": self.now()}
            if doc.get("acknowledged_at") is None:
                changes["acknowledged_at"] = self.now()
        else:
            if doc["status"] == "resolved":
                raise ApiError("invalid_transition", "A resolved alert cannot be escalated.")
            changes = await self._escalation(doc)
        changes.update(updated_by=actor, note=note)
        updated = await self._update(doc, changes)
        if updated is None:
            raise ApiError("stale_version", "The alert changed meanwhile; reload and try again.")
        await self._studies.audit.record(
            actor=principal.username,
            action=f"alert.{action}",
            outcome="success",
            target=alert_id,
            facility=doc["facility"],
            details={"study_id": doc["study_id"], "note": note},
        )
        await self._after_change(doc, updated)
        return updated

    async def _escalation(self, doc: Document) -> Document:
        level = min(int(doc.get("escalation_level", 0)) + 1, MAX_LEVEL)
        target = await self._next_reader(doc, level)
        return {
            "status": "escalated",
            "escalation_level": level,
            "assigned_to": target or doc.get("assigned_to"),
            "assigned_user_id": await self._user_id(target or doc.get("assigned_to")),
            "escalate_at": self.now() + ESCALATION_WINDOW_S[doc["severity"]],
            "notified": sorted({*doc.get("notified", []), *([target] if target else [])}),
        }

    async def _user_id(self, username: str | None) -> str | None:
        """Private rooms are ``user:<user_id>``; the worklist speaks usernames. Carry both."""
        if not username:
            return None
        user = await self._users.by_username(username)
        return user.id if user else None

    async def _next_reader(self, doc: Document, level: int) -> str | None:
        """Level 1: another radiologist of the facility; later levels: an admin."""
        users = [u for u in await self._users.all(doc["facility"]) if not u.disabled]
        wanted = Role.RADIOLOGIST if level == 1 else Role.ADMIN
        skip = {doc.get("assigned_to"), *doc.get("notified", [])}
        for role in (wanted, Role.ADMIN):
            for user in users:
                if user.role is role and user.username not in skip:
                    return user.username
        return None

    async def _update(self, doc: Document, changes: Mapping[str, Any]) -> Document | None:
        fields = {**changes, "updated_at": self.now()}
        return await self.collection.find_one_and_update(
            {"_id": doc["_id"], "version": doc["version"]},
            {"$set": fields, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def _after_change(self, before: Document, after: Document) -> None:
        await self._publisher.publish(events.ALERT_UPDATED, public(after), after["facility"])
        target = after.get("assigned_to")
        if after["status"] == "escalated" and target and target != before.get("assigned_to"):
            await self._notify(after, target, "escalated")
        if before["status"] != after["status"]:
            await self._sync_study(after["study_id"])

    async def _notify(
        self, doc: Document, username: str, kind: Literal["alert", "escalated"]
    ) -> None:
        prefix = "Escalated alert" if kind == "escalated" else "Alert"
        await self._notifications.notify(
            username,
            kind,
            f"{prefix} ({doc['severity']}): {doc['title']}",
            doc["message"],
            facility=doc["facility"],
            study_id=doc["study_id"],
        )

    async def _sync_study(self, study_id: str) -> None:
        """Keep the worklist badge (open alert count) in step with the alerts."""
        count = await self.collection.count_documents(
            {"study_id": study_id, "status": {"$in": list(ACTIVE)}}
        )
        study = await self._studies.collection.find_one_and_update(
            {"_id": study_id},
            {"$set": {"open_alerts": count}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if study is not None:
            await self._studies.changed(study, "alerts")

    # -- the clock -------------------------------------------------------------------------

    async def escalate_due(self, limit: int = 200) -> int:
        """Escalate alerts nobody acknowledged within their window; one bounded pass."""
        now = self.now()
        cursor = self.collection.find(
            {"status": {"$in": list(ACTIVE)}, "escalate_at": {"$lt": now}}
        ).limit(limit)
        due = [doc async for doc in cursor]
        count = 0
        for doc in due:
            if int(doc.get("escalation_level", 0)) >= MAX_LEVEL:
                continue
            changes = await self._escalation(doc)
            changes.update(updated_by=None, note="not acknowledged in time")
            updated = await self._update(doc, changes)
            if updated is None:
                continue
            count += 1
            await self._studies.audit.record(
                actor="system",
                action="alert.escalate",
                outcome="success",
                target=doc["_id"],
                facility=doc["facility"],
                details={"level": updated["escalation_level"], "to": updated.get("assigned_to")},
            )
            await self._after_change(doc, updated)
        return count

    async def flag_overdue(self, limit: int = 200) -> int:
        """Raise one alert per study that passed its turnaround target unreported."""
        now = self.now()
        cursor = self._studies.collection.find(
            {
                "due_at": {"$lt": now},
                "overdue_alerted": False,
                "status": {"$in": sorted(s.value for s in AWAITING_REPORT)},
            }
        ).limit(limit)
        overdue = [doc async for doc in cursor]
        count = 0
        for study in overdue:
            result = await self._studies.collection.update_one(
                {"_id": study["_id"], "overdue_alerted": False},
                {"$set": {"overdue_alerted": True}},
            )
            if result.modified_count != 1:
                continue
            count += 1
            severity: Severity = "critical" if study["priority"] == Priority.STAT else "warning"
            await self.raise_alert(
                study,
                kind="overdue",
                severity=severity,
                title=f"Overdue {study['priority']} study {study['accession_number']}",
                message=f"{study.get('requested_procedure') or 'The study'} is past its "
                "turnaround target and still unreported.",
                source="workflow",
            )
        return count

    # -- mirroring the rooms ---------------------------------------------------------------

    def subscribe(self, hub: EventHub) -> Unsubscribe:
        return hub.subscribe(events.ALERT_UPDATED, self.mirror)

    async def mirror(self, event: DomainEvent) -> None:
        """Apply an alert change made in a study room (source ``rooms``) to the stored alert."""
        data = event.data
        if data.get("source") != "rooms":
            return
        alert_id, version, status = data.get("id"), data.get("version"), data.get("status")
        if not isinstance(alert_id, str) or not isinstance(version, int):
            log.warning("dropped a rooms alert.updated without id/version")
            return
        if status not in ("open", "acknowledged", "escalated", "resolved"):
            log.warning("dropped a rooms alert.updated with status %r", status)
            return
        doc = await self.collection.find_one({"_id": alert_id})
        if doc is None or version <= doc["version"]:
            return
        changes: Document = {
            "status": status,
            "version": version,
            "updated_at": self.now(),
            "updated_by": data.get("updated_by"),
            "note": data.get("note"),
        }
        if status in ("acknowledged", "resolved") and doc.get("acknowledged_at") is None:
            changes["acknowledged_at"] = self.now()
        if status == "resolved":
            changes["resolved_at"] = self.now()
        if isinstance(data.get("escalation_level"), int):
            changes["escalation_level"] = data["escalation_level"]
        if isinstance(data.get("assigned_to"), str | None) and "assigned_to" in data:
            changes["assigned_to"] = data["assigned_to"]
            changes["assigned_user_id"] = await self._user_id(data["assigned_to"])
        result = await self.collection.update_one(
            {"_id": alert_id, "version": doc["version"]}, {"$set": changes}
        )
        if result.modified_count == 1 and doc["status"] != status:
            await self._sync_study(doc["study_id"])

"""Who reads what: manual assignment by admins, invitations of referring physicians.

Assignment names a reader; it does not claim. The reader still claims before reporting, so an
assignment can be changed while nobody is reading yet, and a claim is never taken away silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument

from server.auth.roles import Role
from server.auth.service import Principal
from server.auth.users import Users
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub, Unsubscribe
from server.store.database import Document, IndexSpec, Store
from server.workflow import events
from server.workflow.notifications import Notifications
from server.workflow.status import SYSTEM, Status
from server.workflow.studies import Studies

READERS = frozenset({Role.RADIOLOGIST, Role.ADMIN})
RULES = "assignment_rules"
INDEXES = [IndexSpec(RULES, [("facility", 1)])]


class Assignment:
    def __init__(self, studies: Studies, users: Users, notifications: Notifications) -> None:
        self._studies = studies
        self._users = users
        self._notifications = notifications

    async def assign(self, study_id: str, username: str | None, principal: Principal) -> Document:
        doc = await self._studies.visible(study_id, principal)
        if username is not None:
            user = await self._users.by_username(username)
            if user is None or user.disabled:
                raise ApiError("validation_failed", f"No active account {username!r}.")
            if user.role not in READERS:
                raise ApiError("validation_failed", f"{username} is not a reader.")
            if user.facility != doc["facility"] and user.role is not Role.ADMIN:
                raise ApiError("validation_failed", f"{username} works at another facility.")
        doc = await self._studies.update_fields(
            doc, {"assigned_to": username}, actor=principal.username, action="study.assign"
        )
        if username is not None and username != principal.username:
            await self._notifications.notify(
                username,
                "assigned",
                f"Assigned to you: {doc['accession_number']}",
                f"{principal.username} assigned {doc.get('requested_procedure') or 'a study'} "
                f"({doc['priority']}) to you.",
                facility=doc["facility"],
                study_id=doc["_id"],
            )
        return doc

    async def assign_as_system(self, study: Document, username: str) -> Document:
        doc = await self._studies.update_fields(
            study,
            {"assigned_to": username},
            actor=SYSTEM,
            action="study.assign.auto",
            retry=True,
        )
        await self._notifications.notify(
            username,
            "assigned",
            f"Assigned to you: {doc['accession_number']}",
            f"{doc.get('requested_procedure') or 'A study'} ({doc['priority']}) is yours to read.",
            facility=doc["facility"],
            study_id=doc["_id"],
        )
        return doc

    async def invite(self, study_id: str, username: str, principal: Principal) -> Document:
        """Let a referring physician (or a colleague) see this study's final reports."""
        doc = await self._studies.visible(study_id, principal)
        user = await self._users.by_username(username)
        if user is None or user.disabled:
            raise ApiError("validation_failed", f"No active account {username!r}.")
        invited = sorted({*doc.get("invited", []), username})
        return await self._studies.update_fields(
            doc, {"invited": invited}, actor=principal.username, action="study.invite"
        )


class AutoAssign:
    """Rules that hand a study to the next reader on duty as soon as it becomes unread.

    Collection ``assignment_rules``: ``facility``, optional ``modality`` and ``body_part`` (a
    rule without them matches every study), ``readers`` (the usernames on duty, in turn order)
    and ``turn`` (a counter bumped atomically, so two nodes never hand out the same turn). The
    most specific matching rule wins; readers who are disabled or gone are skipped.
    """

    def __init__(
        self, store: Store, studies: Studies, users: Users, assignment: Assignment
    ) -> None:
        self.rules = store[RULES]
        self._studies = studies
        self._users = users
        self._assignment = assignment

    def subscribe(self, hub: EventHub) -> Unsubscribe:
        return hub.subscribe(events.STATUS_CHANGED, self._on_status)

    async def _on_status(self, event: DomainEvent) -> None:
        if event.data.get("to") == Status.UNREAD.value and event.data.get("from") in (
            Status.SCHEDULED.value,
            Status.ARRIVED.value,
        ):
            await self.assign_next(str(event.data["study_id"]))

    async def add_rule(self, body: Mapping[str, Any], principal: Principal) -> Document:
        for username in body["readers"]:
            user = await self._users.by_username(username)
            if user is None or user.role not in READERS or user.facility != principal.facility:
                raise ApiError(
                    "validation_failed", f"{username} is not a reader of {principal.facility}."
                )
        doc: Document = {
            "_id": uuid.uuid4().hex,
            "facility": principal.facility,
            "modality": body.get("modality"),
            "body_part": body.get("body_part"),
            "readers": list(body["readers"]),
            "turn": 0,
            "created_by": principal.username,
        }
        await self.rules.insert_one(doc)
        return doc

    async def list_rules(self, facility: str) -> list[Document]:
        return [doc async for doc in self.rules.find({"facility": facility}).sort("_id", 1)]

    async def delete_rule(self, rule_id: str, facility: str) -> None:
        result = await self.rules.delete_one({"_id": rule_id, "facility": facility})
        if result.deleted_count != 1:
            raise ApiError("not_found", f"No assignment rule {rule_id!r}.")

    async def assign_next(self, study_id: str) -> str | None:
        study = await self._studies.get(study_id)
        if study.get("assigned_to"):
            return None
        candidates = [
            rule
            for rule in await self.list_rules(study["facility"])
            if rule.get("modality") in (None, study.get("modality"))
            and rule.get("body_part") in (None, study.get("body_part"))
        ]
        if not candidates:
            return None
        rule = max(
            candidates,
            key=lambda r: (r.get("modality") is not None, r.get("body_part") is not None),
        )
        readers = rule["readers"]
        for _ in range(len(readers)):
            bumped = await self.rules.find_one_and_update(
                {"_id": rule["_id"]}, {"$inc": {"turn": 1}}, return_document=ReturnDocument.AFTER
            )
            if bumped is None:
                return None
            username = str(readers[(int(bumped["turn"]) - 1) % len(readers)])
            user = await self._users.by_username(username)
            if user is None or user.disabled:
                continue
            await self._assignment.assign_as_system(study, username)
            return username
        return None


def _specificity(rule: Mapping[str, Any]) -> tuple[bool, bool]:
    return rule.get("modality") is not None, rule.get("body_part") is not None

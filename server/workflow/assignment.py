"""Who reads what: manual assignment by admins, invitations of referring physicians.

Assignment names a reader; it does not claim. The reader still claims before reporting, so an
assignment can be changed while nobody is reading yet, and a claim is never taken away silently.
"""

from __future__ import annotations

from server.auth.roles import Role
from server.auth.service import Principal
from server.auth.users import Users
from server.http.errors import ApiError
from server.store.database import Document
from server.workflow.notifications import Notifications
from server.workflow.studies import Studies

READERS = frozenset({Role.RADIOLOGIST, Role.ADMIN})


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

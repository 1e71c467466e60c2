"""Who may enter which study room: role, the study's facility, and invitations.

The study's facility belongs to the DICOM archive. Rooms only need one question answered, so
they depend on the small ``StudyDirectory`` protocol; the composition root wires it to the
archive's ``studies`` collection.
"""

from __future__ import annotations

import time
from typing import Protocol

from pymongo.errors import DuplicateKeyError

from server.auth.roles import Permission, Role
from server.auth.service import Principal
from server.http.errors import ApiError
from server.rooms.oplog import Clock
from server.store.database import IndexSpec, Store

INVITATIONS = "study_invitations"
STUDIES = "studies"
INDEXES = [IndexSpec(INVITATIONS, [("study_uid", 1), ("user_id", 1)], unique=True)]


class StudyDirectory(Protocol):
    async def study_facility(self, study_uid: str) -> str | None:
        """The facility that owns the study, or None when the archive does not know it."""


class StoreStudyDirectory:
    """Reads the archive's study index: ``{"StudyInstanceUID": ..., "facility": ...}``."""

    def __init__(self, store: Store, collection: str = STUDIES) -> None:
        self._studies = store[collection]

    async def study_facility(self, study_uid: str) -> str | None:
        doc = await self._studies.find_one(
            {"StudyInstanceUID": study_uid}, {"facility": 1, "_id": 0}
        )
        if doc is None:
            return None
        facility = doc.get("facility")
        return facility if isinstance(facility, str) else None


class Invitations:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self._invitations = store[INVITATIONS]
        self._clock = clock

    async def invite(self, study_uid: str, user_id: str, by: Principal) -> bool:
        """True for a new invitation, False when it already existed."""
        try:
            await self._invitations.insert_one(
                {
                    "study_uid": study_uid,
                    "user_id": user_id,
                    "invited_by": by.user_id,
                    "at": self._clock(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def is_invited(self, study_uid: str, user_id: str) -> bool:
        return (
            await self._invitations.find_one({"study_uid": study_uid, "user_id": user_id})
            is not None
        )


class StudyAccess:
    def __init__(self, directory: StudyDirectory, invitations: Invitations) -> None:
        self.directory = directory
        self.invitations = invitations

    async def facility_of(self, principal: Principal, study_uid: str) -> str:
        """The study's facility, refusing studies the caller's facility does not own.

        An unknown study and a foreign one answer the same ``not_found``, so nobody can probe
        which studies another facility holds.
        """
        facility = await self.directory.study_facility(study_uid)
        if facility is None or not principal.may_access_facility(facility):
            raise ApiError("not_found", "No such study.")
        return facility

    async def check_join(self, principal: Principal, study_uid: str) -> str:
        principal.require(Permission.ROOMS_JOIN)
        facility = await self.facility_of(principal, study_uid)
        if principal.role is Role.REFERRING_PHYSICIAN and not await self.invitations.is_invited(
            study_uid, principal.user_id
        ):
            raise ApiError("forbidden", "You need an invitation to this study.")
        return facility

    async def check_invite(self, principal: Principal, study_uid: str) -> str:
        if principal.role not in (Role.ADMIN, Role.RADIOLOGIST):
            raise ApiError("forbidden", "Only admins and radiologists may invite to a study.")
        return await self.facility_of(principal, study_uid)

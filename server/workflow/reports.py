"""Reports: signing freezes a text into an immutable version; addenda append; PDF and SR follow.

Collection ``reports`` holds one document per signed version and is only ever inserted into:
``study_id``, ``version`` (unique together; 1 is the report, 2.. are addenda), ``kind``,
``text``, ``signer``, ``signer_name``, ``signed_at``, ``sha256`` (over the canonical JSON of
everything above plus the accession number, so any later edit is detectable),
``sr_sop_instance_uid``, ``facility``.

The draft lives in the study room's Yjs document (rooms/). The workflow reads it through the
``DraftSource`` protocol that the composition root wires in; until then, and whenever a client
sends it, the final text comes with the sign request. The SR goes to the archive through the
``ArchiveWriter`` protocol (``archive.DicomArchiveWriter``: the gateway's ingest).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError

from server.auth.roles import Permission, Role
from server.auth.service import Principal
from server.auth.tokens import Clock
from server.auth.users import Users
from server.http.errors import ApiError
from server.store.database import Document, IndexSpec, Store
from server.workflow import events
from server.workflow.events import IS_NULL, Publisher, iso
from server.workflow.notifications import Notifications
from server.workflow.orders import PROFILES
from server.workflow.pdf import render_pdf
from server.workflow.sr import build_sr
from server.workflow.status import REPORTED, Status
from server.workflow.studies import Studies, actor_of, new_study_uid

log = logging.getLogger(__name__)

COLLECTION = "reports"
TEMPLATES = "report_templates"
MACROS = "report_macros"
EXPORTS = "report_exports"
# The rooms' invitations into a study room ({study_uid, user_id}); being invited there lets a
# referring physician read the study's final reports too.
ROOM_INVITATIONS = "study_invitations"
MAX_ROOM_INVITATIONS = 1000
EXPORT_RETRY_S = 60.0
EXPORT_RETRY_MAX_S = 3600.0
INDEXES = [
    IndexSpec(COLLECTION, [("study_id", 1), ("version", 1)], unique=True),
    IndexSpec(COLLECTION, [("facility", 1), ("signed_at", -1)]),
    IndexSpec(TEMPLATES, [("facility", 1), ("modality", 1), ("body_part", 1)]),
    IndexSpec(MACROS, [("facility", 1), ("owner", 1), ("name", 1)], unique=True),
    IndexSpec(EXPORTS, [("next_at", 1)]),
]
_MACRO = re.compile(r"(?<![\w.])\.([a-z0-9_-]{1,32})\b")


class DraftSource(Protocol):
    async def draft_text(self, study_uid: str) -> str | None: ...


class ArchiveWriter(Protocol):
    """Stores one DICOM object in the archive on behalf of a facility (the gateway's ingest:
    ``Ingest.open(Upload(facility, "import"))``, ``ingest(upload, data)``, ``close(upload)``)."""

    async def ingest(self, data: bytes, facility: str) -> object: ...


class NoDrafts:
    """Until the rooms' Yjs drafts are wired in, there is no server-side draft to sign."""

    async def draft_text(self, study_uid: str) -> str | None:
        return None


def content_hash(version: Mapping[str, Any]) -> str:
    canonical = {
        k: version[k]
        for k in (
            "study_id",
            "accession_number",
            "version",
            "kind",
            "text",
            "signer",
            "signer_name",
            "signed_at",
        )
    }
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def public(version: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "study_id": version["study_id"],
        "accession_number": version["accession_number"],
        "version": version["version"],
        "kind": version["kind"],
        "text": version["text"],
        "signer": version["signer"],
        "signer_name": version["signer_name"],
        "signed_at": iso(version["signed_at"]),
        "sha256": version["sha256"],
        "sr_sop_instance_uid": version.get("sr_sop_instance_uid"),
    }


def expand_macros(text: str, macros: Mapping[str, str]) -> str:
    """Replace ``.name`` with the macro's text; unknown names stay as typed."""
    return _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), text)


def may_read_reports(doc: Mapping[str, Any], principal: Principal) -> bool:
    """Referring physicians read only studies they ordered or were invited to."""
    if not principal.can(Permission.REPORTS_READ):
        return False
    if principal.role is Role.REFERRING_PHYSICIAN:
        return doc.get("referring_physician") == principal.username or principal.username in (
            doc.get("invited") or []
        )
    return principal.may_access_facility(doc["facility"])


class Reports:
    def __init__(
        self,
        store: Store,
        studies: Studies,
        users: Users,
        notifications: Notifications,
        publisher: Publisher,
        clock: Clock,
        archive: ArchiveWriter,
        drafts: DraftSource,
    ) -> None:
        self.collection = store[COLLECTION]
        self.profiles = store[PROFILES]
        self.templates = store[TEMPLATES]
        self.macros = store[MACROS]
        self.exports = store[EXPORTS]
        self._room_invitations = store[ROOM_INVITATIONS]
        self._studies = studies
        self._users = users
        self._notifications = notifications
        self._publisher = publisher
        self._clock = clock
        self.archive = archive
        self.drafts = drafts

    # -- reading ---------------------------------------------------------------------------

    async def readable_study(self, study_id: str, principal: Principal) -> Document:
        doc = await self._studies.get(study_id)
        if not may_read_reports(doc, principal) and not (
            principal.role is Role.REFERRING_PHYSICIAN
            and principal.can(Permission.REPORTS_READ)
            and await self._room_invitations.find_one(
                {"study_uid": doc["study_instance_uid"], "user_id": principal.user_id}
            )
        ):
            # Indistinguishable from a missing study, so nobody probes for accession numbers.
            raise ApiError("not_found", f"No study {study_id!r}.")
        return doc

    async def readable_studies(
        self, principal: Principal, offset: int, limit: int
    ) -> list[Document]:
        """Reported studies the caller may read, most recently reported first."""
        reported = {"$in": sorted(s.value for s in REPORTED)}
        order = [("reported_at", -1), ("_id", 1)]
        if principal.role is not Role.REFERRING_PHYSICIAN:
            cursor = self._studies.collection.find(
                {"status": reported, "facility": principal.facility}
            )
            return [doc async for doc in cursor.sort(order).skip(offset).limit(limit)]
        # Ordered by them or invited here, or invited into the study's room (rooms/).
        wanted = offset + limit
        queries: list[Document] = [{"status": reported, "report_readers": principal.username}]
        cursor = self._room_invitations.find({"user_id": principal.user_id}, {"study_uid": 1})
        uids = [str(d["study_uid"]) async for d in cursor.limit(MAX_ROOM_INVITATIONS)]
        if uids:
            queries.append({"status": reported, "study_instance_uid": {"$in": uids}})
        found: dict[str, Document] = {}
        for match in queries:
            async for doc in self._studies.collection.find(match).sort(order).limit(wanted):
                found[doc["_id"]] = doc
        ranked = sorted(found.values(), key=lambda d: (-(d.get("reported_at") or 0), d["_id"]))
        return ranked[offset:wanted]

    async def versions(self, study_id: str) -> list[Document]:
        cursor = self.collection.find({"study_id": study_id}).sort("version", 1)
        return [doc async for doc in cursor]

    async def facility_profile(self, facility: str) -> tuple[str, bytes | None]:
        profile = await self.profiles.find_one({"_id": facility})
        if profile is None:
            return facility, None
        logo = profile.get("logo_png")
        return str(profile.get("name") or facility), bytes(logo) if logo else None

    async def pdf(self, study_id: str, version: int, principal: Principal) -> bytes:
        study = await self.readable_study(study_id, principal)
        versions = [v for v in await self.versions(study_id) if v["version"] <= version]
        if not versions or versions[-1]["version"] != version:
            raise ApiError("not_found", f"No report version {version} for this study.")
        name, logo = await self.facility_profile(study["facility"])
        return await asyncio.to_thread(
            render_pdf, study, versions, facility_name=name, logo_png=logo
        )

    # -- signing ---------------------------------------------------------------------------

    async def sign(self, study_id: str, principal: Principal, text: str | None) -> Document:
        study = await self._studies.visible(study_id, principal)
        status = Status(study["status"])
        if status not in (Status.READING, Status.PRELIMINARY):
            raise ApiError(
                "invalid_transition", f"Only a study being read can be signed; it is {status}."
            )
        override = self._studies.require_claim(study, principal)
        if text is None:
            text = await self.drafts.draft_text(study["study_instance_uid"])
        if text is None or not text.strip():
            raise ApiError("validation_failed", "There is no report text to sign.")
        version = await self._insert(study, principal, text, "report", 1)
        try:
            await self._studies.transition(
                study_id,
                Status.FINAL,
                actor_role=actor_of(principal),
                actor_name=principal.username,
                reason="report signed by admin override" if override else "report signed",
            )
        except ApiError:
            # The study moved under us (released, cancelled): the version was never published.
            await self.collection.delete_one({"_id": version["_id"]})
            raise
        await self._after_sign(study, version, principal, override)
        return version

    async def addendum(self, study_id: str, principal: Principal, text: str) -> Document:
        study = await self._studies.visible(study_id, principal)
        if Status(study["status"]) not in REPORTED:
            raise ApiError("invalid_transition", "Addenda follow a signed report.")
        existing = await self.versions(study_id)
        version = await self._insert(study, principal, text, "addendum", len(existing) + 1)
        if study["status"] == Status.FINAL.value:
            await self._studies.transition(
                study_id,
                Status.AMENDED,
                actor_role=actor_of(principal),
                actor_name=principal.username,
                reason="addendum",
            )
        await self._after_sign(study, version, principal, False)
        return version

    async def _insert(
        self, study: Document, principal: Principal, text: str, kind: str, number: int
    ) -> Document:
        user = await self._users.by_username(principal.username)
        version: Document = {
            "_id": uuid.uuid4().hex,
            "study_id": study["_id"],
            "accession_number": study["accession_number"],
            "facility": study["facility"],
            "version": number,
            "kind": kind,
            "text": text,
            "signer": principal.username,
            "signer_name": user.display_name if user else principal.username,
            "signed_at": self._clock().timestamp(),
            "sr_sop_instance_uid": new_study_uid(),
        }
        version["sha256"] = content_hash(version)
        try:
            await self.collection.insert_one(version)
        except DuplicateKeyError:
            raise ApiError(
                "conflict", "Somebody signed this study a moment ago; reload to see it."
            ) from None
        return version

    async def _after_sign(
        self, study: Document, version: Document, principal: Principal, override: bool
    ) -> None:
        await self._studies.audit.record(
            actor=principal.username,
            action=f"report.{version['kind']}.sign" + (".override" if override else ""),
            outcome="success",
            target=study["_id"],
            facility=study["facility"],
            details={"version": version["version"], "sha256": version["sha256"]},
        )
        await self._export(study, version)
        await self._publisher.publish(
            events.REPORT_SIGNED,
            {
                "study_id": study["_id"],
                "study_uid": study["study_instance_uid"],
                "accession_number": study["accession_number"],
                "version": version["version"],
                "kind": version["kind"],
                "signer": version["signer"],
                "signed_at": iso(version["signed_at"]),
                "sha256": version["sha256"],
            },
            study["facility"],
        )
        recipients = {study.get("referring_physician"), *(study.get("invited") or [])}
        for username in sorted(r for r in recipients if r and r != principal.username):
            await self._notifications.notify(
                username,
                "report_signed" if version["kind"] == "report" else "addendum",
                f"{'Report' if version['kind'] == 'report' else 'Addendum'} signed: "
                f"{study['accession_number']}",
                f"{version['signer_name']} signed the "
                f"{'report' if version['kind'] == 'report' else 'addendum'} for "
                f"{study.get('requested_procedure') or 'the study'}.",
                facility=study["facility"],
                study_id=study["_id"],
            )

    async def _export(self, study: Document, version: Document) -> None:
        """Send the SR to the archive; if the archive fails, queue it so the tick retries it.
        The signed version itself is already stored, so nothing is lost either way."""
        try:
            await self._store_sr(study["_id"], version["version"])
        except Exception as exc:
            log.exception("storing the report SR failed", extra={"study": study["_id"]})
            await self.exports.replace_one(
                {"_id": version["sr_sop_instance_uid"]},
                {
                    "_id": version["sr_sop_instance_uid"],
                    "study_id": study["_id"],
                    "version": version["version"],
                    "attempts": 1,
                    "next_at": self._clock().timestamp() + EXPORT_RETRY_S,
                    "last_error": str(exc)[:500],
                },
                upsert=True,
            )

    async def retry_exports(self, limit: int = 20) -> int:
        """Retry SRs the archive refused, with a growing pause; one bounded pass."""
        now = self._clock().timestamp()
        pending = [d async for d in self.exports.find({"next_at": {"$lt": now}}).limit(limit)]
        done = 0
        for entry in pending:
            try:
                await self._store_sr(entry["study_id"], entry["version"])
            except Exception as exc:
                attempts = int(entry["attempts"]) + 1
                await self.exports.update_one(
                    {"_id": entry["_id"]},
                    {
                        "$set": {
                            "attempts": attempts,
                            "next_at": now + min(EXPORT_RETRY_MAX_S, EXPORT_RETRY_S * 2**attempts),
                            "last_error": str(exc)[:500],
                        }
                    },
                )
                continue
            await self.exports.delete_one({"_id": entry["_id"]})
            done += 1
        return done

    async def _store_sr(self, study_id: str, number: int) -> None:
        """Build the SR of the report up to version ``number`` and hand it to the archive."""
        current = await self._studies.get(study_id)
        if current.get("report_series_uid") is None:
            # Every SR of a study goes into one series; the first writer picks its UID.
            await self._studies.collection.update_one(
                {"_id": study_id, "report_series_uid": IS_NULL},
                {"$set": {"report_series_uid": new_study_uid()}},
            )
            current = await self._studies.get(study_id)
        versions = [v for v in await self.versions(study_id) if v["version"] <= number]
        name, _ = await self.facility_profile(current["facility"])
        data = await asyncio.to_thread(
            build_sr,
            current,
            versions,
            sop_instance_uid=versions[-1]["sr_sop_instance_uid"],
            series_instance_uid=current["report_series_uid"],
            facility_name=name,
        )
        await self.archive.ingest(data, current["facility"])

    # -- templates and macros --------------------------------------------------------------

    async def add_template(self, body: Mapping[str, Any], principal: Principal) -> Document:
        doc: Document = {
            "_id": uuid.uuid4().hex,
            "facility": principal.facility,
            "name": body["name"],
            "modality": body.get("modality"),
            "body_part": body.get("body_part"),
            "sections": [
                {"title": s["title"], "text": s.get("text", "")} for s in body["sections"]
            ],
            "created_by": principal.username,
            "created_at": self._clock().timestamp(),
        }
        await self.templates.insert_one(doc)
        return doc

    async def list_templates(
        self, facility: str, modality: str | None, body_part: str | None
    ) -> list[Document]:
        match: Document = {"facility": facility}
        docs = [doc async for doc in self.templates.find(match).sort("name", 1)]
        # A template without a modality or body part applies to every study.
        return [
            d
            for d in docs
            if (modality is None or d.get("modality") in (None, modality))
            and (body_part is None or d.get("body_part") in (None, body_part))
        ]

    async def add_macro(self, body: Mapping[str, Any], principal: Principal) -> Document:
        owner = "*" if body.get("shared") else principal.username
        doc: Document = {
            "_id": uuid.uuid4().hex,
            "facility": principal.facility,
            "owner": owner,
            "name": body["name"],
            "text": body["text"],
            "created_at": self._clock().timestamp(),
        }
        try:
            await self.macros.insert_one(doc)
        except DuplicateKeyError:
            raise ApiError("conflict", f"A macro named {body['name']!r} exists.") from None
        return doc

    async def macros_for(self, principal: Principal) -> dict[str, str]:
        """Shared macros of the facility, overridden by the reader's own."""
        cursor = self.macros.find(
            {"facility": principal.facility, "owner": {"$in": ["*", principal.username]}}
        )
        docs = [doc async for doc in cursor]
        docs.sort(key=lambda d: d["owner"] != "*")
        return {d["name"]: d["text"] for d in docs}

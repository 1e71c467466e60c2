"""AI engines and their findings: per-engine API keys, validated intake, triage, reader feedback.

Collections: ``ai_engines`` (``_id`` = engine name, ``key_hash`` = SHA-256 of the key, which is
256 random bits so a fast hash is enough; the key itself is shown once, at creation),
``ai_findings`` (one per reported finding) and ``ai_feedback`` (``_id`` = finding id + reader,
so each reader has one verdict per finding and may change it).

Intake checks everything before writing anything: the key, the body (against the catalog, at the
edge), the study. A finding is then stored, published for the study room as a read-only AI
annotation, and, at warning or critical severity, raises an alert and bumps the priority.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from server.auth.service import Principal
from server.auth.tokens import Clock
from server.http.errors import ApiError
from server.store.database import Document, IndexSpec, Store
from server.workflow import events
from server.workflow.ai_sr import SrError, read_findings
from server.workflow.alerts import PRIORITY_FOR, Alerts
from server.workflow.events import Publisher, iso
from server.workflow.status import Priority, higher
from server.workflow.studies import Studies

ENGINES = "ai_engines"
FINDINGS = "ai_findings"
FEEDBACK = "ai_feedback"
INDEXES = [
    IndexSpec(ENGINES, [("key_hash", 1)], unique=True),
    IndexSpec(ENGINES, [("ae_title", 1)]),
    IndexSpec(FINDINGS, [("study_id", 1), ("created_at", 1)]),
    IndexSpec(FINDINGS, [("facility", 1), ("created_at", -1)]),
    IndexSpec(FEEDBACK, [("finding_id", 1)]),
]
KEY_PREFIX = "nxk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def public(doc: Mapping[str, Any], feedback: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "study_id": doc["study_id"],
        "study_instance_uid": doc["study_uid"],
        "engine": doc["engine"],
        "finding_type": doc["finding_type"],
        "severity": doc["severity"],
        "confidence": doc["confidence"],
        "description": doc.get("description") or "",
        "location": doc.get("location"),
        "model": doc["model"],
        "created_at": iso(doc["created_at"]),
        "alert_id": doc.get("alert_id"),
        "feedback": dict(feedback or {}),
    }


class AiResults:
    def __init__(
        self,
        store: Store,
        studies: Studies,
        alerts: Alerts,
        publisher: Publisher,
        clock: Clock,
    ) -> None:
        self.engines = store[ENGINES]
        self.findings = store[FINDINGS]
        self.feedback = store[FEEDBACK]
        self._studies = studies
        self._alerts = alerts
        self._publisher = publisher
        self._clock = clock

    async def register(
        self, name: str, facility: str | None, ae_title: str | None, principal: Principal
    ) -> str:
        if ae_title and await self.engines.find_one({"ae_title": ae_title}):
            raise ApiError("conflict", f"AE title {ae_title!r} already belongs to an AI engine.")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        doc: Document = {
            "_id": name,
            "key_hash": hash_key(key),
            "facility": facility,
            "ae_title": ae_title,
            "disabled": False,
            "created_by": principal.username,
            "created_at": self._clock().timestamp(),
        }
        try:
            await self.engines.insert_one(doc)
        except DuplicateKeyError:
            raise ApiError("conflict", f"An AI engine named {name!r} exists.") from None
        await self._studies.audit.record(
            actor=principal.username,
            action="ai.engine.create",
            outcome="success",
            target=name,
            facility=facility,
        )
        return key

    async def engine_for(self, key: str | None) -> Document:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
            raise ApiError("invalid_api_key", "Send the engine's key as 'X-API-Key: <key>'.")
        engine = await self.engines.find_one({"key_hash": hash_key(key)})
        if engine is None or engine.get("disabled"):
            raise ApiError("invalid_api_key", "This API key is not valid.")
        return engine

    async def _study_for(self, engine: Document, body: Mapping[str, Any]) -> Document:
        uid = body.get("study_instance_uid")
        accession = body.get("accession_number")
        study = await self._studies.by_study_uid(uid) if uid else None
        if study is None and accession:
            study = await self._studies.by_accession(accession)
        if study is not None and uid and accession and study["accession_number"] != accession:
            raise ApiError(
                "unknown_study", "study_instance_uid and accession_number name different studies."
            )
        if study is None or (engine.get("facility") and engine["facility"] != study["facility"]):
            named = f"Study Instance UID {uid}" if uid else f"accession number {accession}"
            raise ApiError("unknown_study", f"No study with {named}.")
        return study

    async def intake(self, engine: Document, body: Mapping[str, Any]) -> Document:
        study = await self._study_for(engine, body)
        now = self._clock().timestamp()
        finding: Document = {
            "_id": "f_" + uuid.uuid4().hex,
            "study_id": study["_id"],
            "study_uid": study["study_instance_uid"],
            "facility": study["facility"],
            "engine": engine["_id"],
            "finding_type": body["finding_type"],
            "severity": body["severity"],
            "confidence": float(body["confidence"]),
            "description": body.get("description") or "",
            "location": body.get("location"),
            "model": {"name": body["model"]["name"], "version": body["model"]["version"]},
            "created_at": now,
            "alert_id": None,
        }
        await self.findings.insert_one(finding)
        await self._studies.audit.record(
            actor=f"ai:{engine['_id']}",
            action="ai.finding",
            outcome="success",
            target=study["_id"],
            facility=study["facility"],
            details={"finding": finding["_id"], "severity": finding["severity"]},
        )
        bump = PRIORITY_FOR[finding["severity"]]
        if bump is not None:
            alert = await self._alerts.raise_alert(
                study,
                kind="ai",
                severity=finding["severity"],
                title=f"AI: {finding['finding_type']} ({finding['confidence']:.0%})",
                message=finding["description"]
                or f"{engine['_id']} reported {finding['finding_type']}.",
                source=f"ai:{engine['_id']}",
                finding_id=finding["_id"],
            )
            finding["alert_id"] = alert["_id"]
            await self.findings.update_one(
                {"_id": finding["_id"]}, {"$set": {"alert_id": alert["_id"]}}
            )
            current = Priority(study["priority"])
            if higher(current, bump) is not current:
                fresh = await self._studies.get(study["_id"])
                await self._studies.set_priority(
                    fresh,
                    bump,
                    actor=f"ai:{engine['_id']}",
                    reason=f"AI triage: {finding['finding_type']}",
                    retry=True,
                )
        await self._publisher.publish(
            events.AI_FINDING_CREATED,
            {"study_uid": study["study_instance_uid"], "finding": public(finding)},
            study["facility"],
        )
        return finding

    async def intake_sr(self, engine: Document, data: bytes) -> list[Document]:
        """Every finding of an SR, or none: all are parsed, validated and matched first."""
        try:
            parsed = await asyncio.to_thread(read_findings, data)
        except SrError as exc:
            raise ApiError("validation_failed", f"Malformed AI SR: {exc}") from None
        for body in parsed.bodies:
            await self._study_for(engine, body)
        return [await self.intake(engine, body) for body in parsed.bodies]

    async def for_study(self, study_id: str) -> list[dict[str, Any]]:
        docs = [d async for d in self.findings.find({"study_id": study_id}).sort("created_at", 1)]
        verdicts: dict[str, dict[str, str]] = {}
        ids = [d["_id"] for d in docs]
        async for fb in self.feedback.find({"finding_id": {"$in": ids}}):
            verdicts.setdefault(fb["finding_id"], {})[fb["username"]] = fb["verdict"]
        return [public(d, verdicts.get(d["_id"])) for d in docs]

    async def give_feedback(
        self, finding_id: str, principal: Principal, verdict: str, note: str | None
    ) -> dict[str, Any]:
        finding = await self.findings.find_one({"_id": finding_id})
        if finding is None or not principal.may_access_facility(finding["facility"]):
            raise ApiError("not_found", f"No finding {finding_id!r}.")
        await self.feedback.replace_one(
            {"_id": f"{finding_id}:{principal.username}"},
            {
                "_id": f"{finding_id}:{principal.username}",
                "finding_id": finding_id,
                "facility": finding["facility"],
                "engine": finding["engine"],
                "model": finding["model"],
                "username": principal.username,
                "verdict": verdict,
                "note": note,
                "at": self._clock().timestamp(),
            },
            upsert=True,
        )
        feedback = {
            fb["username"]: fb["verdict"]
            async for fb in self.feedback.find({"finding_id": finding_id})
        }
        return public(finding, feedback)

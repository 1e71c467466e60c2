"""The append-only audit log: who did what to which record, when, from where, and the outcome.

Every sign-in, sign-out and failure is recorded, and so is every later access to patient data.
Nothing in Noctis updates or deletes an audit entry; the collection is only ever inserted into.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bson import ObjectId

from server.auth.tokens import Clock, utc_now
from server.store.database import Document, IndexSpec, Store

COLLECTION = "audit"
INDEXES = [
    IndexSpec(COLLECTION, [("at", -1)]),
    IndexSpec(COLLECTION, [("actor", 1), ("at", -1)]),
    IndexSpec(COLLECTION, [("action", 1), ("at", -1)]),
    IndexSpec(COLLECTION, [("target", 1), ("at", -1)]),
]

Outcome = Literal["success", "failure", "denied"]


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


class AuditLog:
    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._collection = store[COLLECTION]
        self._clock = clock

    async def record(
        self,
        *,
        actor: str | None,
        action: str,
        outcome: Outcome,
        target: str | None = None,
        remote: str | None = None,
        facility: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        entry: Document = {
            "at": self._clock().timestamp(),
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "target": target,
            "remote": remote,
            "facility": facility,
        }
        if details:
            entry["details"] = details
        await self._collection.insert_one(entry)

    async def find(self, query: AuditQuery) -> list[Document]:
        match: Document = {}
        for field in ("actor", "action", "target", "outcome"):
            value = getattr(query, field)
            if value is not None:
                match[field] = value
        if query.since or query.until:
            at: Document = {}
            if query.since:
                at["$gte"] = query.since.timestamp()
            if query.until:
                at["$lt"] = query.until.timestamp()
            match["at"] = at
        cursor = (
            self._collection.find(match)
            .sort([("at", -1), ("_id", -1)])
            .skip(query.offset)
            .limit(query.limit)
        )
        return [_public(entry) async for entry in cursor]


def _public(entry: Document) -> Document:
    out = dict(entry)
    identifier = out.pop("_id")
    out["id"] = str(identifier) if isinstance(identifier, ObjectId) else identifier
    at = out.get("at")
    if isinstance(at, float | int):
        out["at"] = datetime.fromtimestamp(at, UTC).isoformat()
    return out

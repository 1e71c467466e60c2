"""Annotations with optimistic concurrency, per-author undo and a history of every change.

Each annotation carries a version; an update or delete names the version it edits and a stale
one is refused with the current state, so two readers never silently overwrite each other.
Every change is a history entry; ``undo`` reverts the caller's own latest change that is not yet
undone, again only if nobody changed the annotation since.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from pymongo import ReturnDocument

from server.auth.roles import Permission
from server.auth.service import Principal
from server.http.errors import ApiError
from server.rooms.batched import InsertBatcher
from server.rooms.measure import Measurer, Shape, measurement_for
from server.rooms.oplog import Clock
from server.store.database import Document, IndexSpec, Store

ANNOTATIONS = "annotations"
HISTORY = "annotation_history"
INDEXES = [
    IndexSpec(ANNOTATIONS, [("study_uid", 1), ("deleted", 1)]),
    IndexSpec(HISTORY, [("annotation_id", 1), ("at", 1)]),
    IndexSpec(HISTORY, [("study_uid", 1), ("actor.user_id", 1), ("undone", 1), ("at", -1)]),
]

# How many points each kind takes: (minimum, maximum).
POINTS = {
    "length": (2, 2),
    "angle": (3, 3),
    "cobb": (4, 4),
    "ellipse": (2, 2),
    "rectangle": (2, 2),
    "polygon": (3, 256),
    "probe": (1, 1),
    "arrow": (2, 2),
    "text": (1, 1),
    "key_image": (0, 0),
}
GEOMETRY = ("points", "text", "label")


def check_shape(kind: str, points: list[list[float]], text: str | None) -> None:
    low, high = POINTS[kind]
    if not low <= len(points) <= high:
        wanted = str(low) if low == high else f"{low}-{high}"
        raise ApiError(
            "validation_failed", f"a {kind} annotation takes {wanted} points, got {len(points)}"
        )
    if kind == "text" and not text:
        raise ApiError("validation_failed", "a text annotation needs text")


class Annotations:
    def __init__(self, store: Store, measurer: Measurer, clock: Clock = time.time) -> None:
        self._annotations = store[ANNOTATIONS]
        self._history = store[HISTORY]
        self._new_annotations = InsertBatcher(self._annotations)
        self._new_history = InsertBatcher(self._history)
        self.measurer = measurer
        self._clock = clock

    async def for_study(self, study_uid: str) -> list[Document]:
        cursor = self._annotations.find({"study_uid": study_uid, "deleted": False}).sort(
            "created_at", 1
        )
        return [public(doc) async for doc in cursor]

    async def create(self, principal: Principal, payload: dict[str, Any]) -> Document:
        principal.require(Permission.ANNOTATIONS_WRITE)
        kind = payload["kind"]
        check_shape(kind, payload["points"], payload.get("text"))
        now = self._clock()
        doc: Document = {
            "_id": uuid.uuid4().hex,
            "study_uid": payload["study_uid"],
            "kind": kind,
            "series_uid": payload.get("series_uid"),
            "instance_uid": payload["instance_uid"],
            "frame": payload["frame"],
            "points": payload["points"],
            "text": payload.get("text"),
            "label": payload.get("label"),
            "author": actor(principal),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "deleted": False,
        }
        doc["measurement"] = await self._measure(doc)
        await asyncio.gather(
            self._new_annotations.insert(doc), self._record(principal, "create", doc, None, doc)
        )
        return public(doc)

    async def update(self, principal: Principal, payload: dict[str, Any]) -> Document:
        current = await self._editable(principal, payload["study_uid"], payload["id"])
        changes = {key: payload[key] for key in GEOMETRY if key in payload}
        if not changes:
            raise ApiError("validation_failed", "nothing to change: send points, text or label")
        merged = {**current, **changes}
        check_shape(current["kind"], merged["points"], merged.get("text"))
        if "points" in changes:
            changes["measurement"] = await self._measure(merged)
        return await self._apply(principal, "update", current, payload["version"], changes)

    async def delete(self, principal: Principal, payload: dict[str, Any]) -> Document:
        current = await self._editable(principal, payload["study_uid"], payload["id"])
        return await self._apply(
            principal, "delete", current, payload["version"], {"deleted": True}
        )

    async def undo(self, principal: Principal, study_uid: str) -> Document:
        """Revert the caller's latest change that is not undone yet."""
        principal.require(Permission.ANNOTATIONS_WRITE)
        entry = await self._history.find_one(
            {
                "study_uid": study_uid,
                "actor.user_id": principal.user_id,
                "undone": False,
                "action": {"$in": ["create", "update", "delete"]},
            },
            sort=[("at", -1), ("version", -1)],
        )
        if entry is None:
            raise ApiError("not_found", "Nothing of yours to undo in this study.")
        current = await self._annotations.find_one({"_id": entry["annotation_id"]})
        if current is None:
            raise ApiError("not_found", "That annotation no longer exists.")
        if entry["action"] == "create":
            changes: Document = {"deleted": True}
        elif entry["action"] == "delete":
            changes = {"deleted": False}
        else:
            before = entry["before"] or {}
            changes = {key: before.get(key) for key in GEOMETRY}
            changes["measurement"] = await self._measure({**current, **changes})
        later = self._history.find(
            {"annotation_id": entry["annotation_id"], "version": {"$gt": entry["version"]}}
        )
        async for step in later:
            if step["actor"]["user_id"] != principal.user_id or not (
                step["action"] == "undo" or step["undone"]
            ):
                raise ApiError(
                    "stale_version",
                    f"{step['actor']['username']} changed this annotation since; undo refused.",
                    details={"current": public(current)},
                )
        result = await self._apply(principal, "undo", current, current["version"], changes)
        await self._history.update_one({"_id": entry["_id"]}, {"$set": {"undone": True}})
        return result

    async def history(self, study_uid: str, annotation_id: str) -> list[Document]:
        cursor = self._history.find(
            {"study_uid": study_uid, "annotation_id": annotation_id}, {"_id": 0}
        ).sort([("at", 1), ("version", 1)])
        return [
            {k: entry.get(k) for k in ("action", "actor", "version", "at", "before", "after")}
            async for entry in cursor
        ]

    async def _editable(self, principal: Principal, study_uid: str, annotation_id: str) -> Document:
        principal.require(Permission.ANNOTATIONS_WRITE)
        current = await self._annotations.find_one({"_id": annotation_id, "study_uid": study_uid})
        if current is None or current["deleted"]:
            raise ApiError("not_found", "No such annotation.")
        if current["author"]["user_id"] != principal.user_id and not principal.can(
            Permission.USERS_MANAGE
        ):
            raise ApiError("forbidden", "Only its author (or an admin) may change an annotation.")
        return current

    async def _apply(
        self, principal: Principal, action: str, current: Document, version: int, changes: Document
    ) -> Document:
        updated = await self._annotations.find_one_and_update(
            {"_id": current["_id"], "version": version},
            {"$set": {**changes, "updated_at": self._clock()}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            latest = await self._annotations.find_one({"_id": current["_id"]})
            raise ApiError(
                "stale_version",
                f"This annotation is at version {latest['version'] if latest else '?'}, "
                f"not {version}.",
                details={"current": public(latest) if latest else None},
            )
        await self._record(principal, action, updated, current, updated)
        return public(updated)

    async def _measure(self, doc: Document) -> dict[str, Any]:
        shape = Shape(
            study_uid=doc["study_uid"],
            kind=doc["kind"],
            instance_uid=doc["instance_uid"],
            frame=doc["frame"],
            points=tuple((float(x), float(y)) for x, y in doc["points"]),
        )
        return await measurement_for(self.measurer, shape)

    async def _record(
        self,
        principal: Principal,
        action: str,
        doc: Document,
        before: Document | None,
        after: Document | None,
    ) -> None:
        await self._new_history.insert(
            {
                "annotation_id": doc["_id"],
                "study_uid": doc["study_uid"],
                "action": action,
                "actor": actor(principal),
                "version": doc["version"],
                "at": self._clock(),
                "before": _geometry(before),
                "after": _geometry(after),
                "undone": False,
            }
        )


def actor(principal: Principal) -> dict[str, str]:
    return {"user_id": principal.user_id, "username": principal.username}


def public(doc: Document) -> Document:
    out = {key: value for key, value in doc.items() if key != "_id"}
    # nx-27017 stores a top-level boolean written by $set as 0/1.
    out["deleted"] = bool(doc.get("deleted", False))
    out["id"] = doc["_id"]
    return out


def _geometry(doc: Document | None) -> Document | None:
    if doc is None:
        return None
    return {key: doc.get(key) for key in (*GEOMETRY, "deleted")}

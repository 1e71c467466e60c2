"""Annotations with optimistic concurrency, per-author undo and a history of every change.

Each annotation carries a version; an update or delete names the version it edits and a stale
one is refused with the current state, so two readers never silently overwrite each other.
Every change is a history entry; ``undo`` reverts the caller's own latest change that is not yet
undone, again only if nobody changed the annotation since.

The history entry is not a document of its own: it rides in the change's op in the room's op log
(``Change.record``, a field ``public_op`` never sends), so a change costs the annotation write and
one op insert. An update or delete is one ``find_one_and_update`` whose filter holds the author,
the version and "not deleted"; the annotation is read first only when the change needs it (new
points to measure, an emptied text to check) or when that write matched nothing and the reason
must be told apart (gone, someone else's, stale).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from server.auth.roles import Permission
from server.auth.service import Principal
from server.http.errors import ApiError
from server.rooms.batched import InsertBatcher
from server.rooms.measure import Measurer, Shape, measurement_for
from server.rooms.oplog import OPS, Clock, study_room
from server.store.database import Document, IndexSpec, Store

ANNOTATIONS = "annotations"
INDEXES = [
    IndexSpec(ANNOTATIONS, [("study_uid", 1), ("deleted", 1)]),
    # Sparse: only annotation ops carry a change record, so chat and other ops pay nothing.
    IndexSpec(OPS, [("change.annotation_id", 1), ("seq", 1)], options={"sparse": True}),
]
UNDOABLE = ["create", "update", "delete"]

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


@dataclass(frozen=True)
class Change:
    """A stored annotation change: the annotation as clients see it, and the history entry its
    op carries into the op log (who did what is read back from there)."""

    annotation: Document
    record: Document

    def op_fields(self) -> Document:
        """What the op document stores besides the op itself (``undone`` is set by undo)."""
        return {"change": self.record, "undone": False}


class Annotations:
    def __init__(self, store: Store, measurer: Measurer, clock: Clock = time.time) -> None:
        self._annotations = store[ANNOTATIONS]
        self._ops = store[OPS]
        self._new_annotations = InsertBatcher(self._annotations)
        self.measurer = measurer
        self._clock = clock

    async def for_study(self, study_uid: str) -> list[Document]:
        cursor = self._annotations.find({"study_uid": study_uid, "deleted": False}).sort(
            "created_at", 1
        )
        return [public(doc) async for doc in cursor]

    async def create(self, principal: Principal, payload: dict[str, Any]) -> Change:
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
        await self._new_annotations.insert(doc)
        return _change("create", None, doc)

    async def update(self, principal: Principal, payload: dict[str, Any]) -> Change:
        principal.require(Permission.ANNOTATIONS_WRITE)
        changes = {key: payload[key] for key in GEOMETRY if key in payload}
        if not changes:
            raise ApiError("validation_failed", "nothing to change: send points, text or label")
        if "points" not in changes and ("text" not in changes or changes["text"]):
            # Nothing to measure and nothing the kind could refuse: write without reading.
            change = await self._write_own(principal, "update", payload, changes)
            if change is not None:
                return change
        current = await self._editable(principal, payload["study_uid"], payload["id"])
        merged = {**current, **changes}
        check_shape(current["kind"], merged["points"], merged.get("text"))
        if "points" in changes:
            changes["measurement"] = await self._measure(merged)
        return await self._apply("update", current, payload["version"], changes)

    async def delete(self, principal: Principal, payload: dict[str, Any]) -> Change:
        principal.require(Permission.ANNOTATIONS_WRITE)
        change = await self._write_own(principal, "delete", payload, {"deleted": True})
        if change is not None:
            return change
        current = await self._editable(principal, payload["study_uid"], payload["id"])
        return await self._apply("delete", current, payload["version"], {"deleted": True})

    async def undo(self, principal: Principal, study_uid: str) -> Change:
        """Revert the caller's latest change that is not undone yet."""
        principal.require(Permission.ANNOTATIONS_WRITE)
        room = study_room(study_uid)
        entry = await self._ops.find_one(
            {
                "room": room,
                "actor.user_id": principal.user_id,
                "undone": False,
                "change.action": {"$in": UNDOABLE},
            },
            sort=[("seq", -1)],
        )
        if entry is None:
            raise ApiError("not_found", "Nothing of yours to undo in this study.")
        done = entry["change"]
        current = await self._annotations.find_one({"_id": done["annotation_id"]})
        if current is None:
            raise ApiError("not_found", "That annotation no longer exists.")
        if done["action"] == "create":
            changes: Document = {"deleted": True}
        elif done["action"] == "delete":
            changes = {"deleted": False}
        else:
            before = done["before"] or {}
            changes = {key: before.get(key) for key in GEOMETRY}
            changes["measurement"] = await self._measure({**current, **changes})
        later = self._ops.find(
            {
                "change.annotation_id": done["annotation_id"],
                "change.version": {"$gt": done["version"]},
            }
        )
        async for step in later:
            if step["actor"]["user_id"] != principal.user_id or not (
                step["change"]["action"] == "undo" or step["undone"]
            ):
                raise ApiError(
                    "stale_version",
                    f"{step['actor']['username']} changed this annotation since; undo refused.",
                    details={"current": public(current)},
                )
        result = await self._apply("undo", current, current["version"], changes)
        await self._ops.update_one({"_id": entry["_id"]}, {"$set": {"undone": True}})
        return result

    async def history(self, study_uid: str, annotation_id: str) -> list[Document]:
        cursor = self._ops.find(
            {"change.annotation_id": annotation_id, "room": study_room(study_uid)}
        ).sort("seq", 1)
        return [
            {
                "action": op["change"]["action"],
                "actor": op["actor"],
                "version": op["change"]["version"],
                "at": op["at"],
                "before": op["change"]["before"],
                "after": op["change"]["after"],
            }
            async for op in cursor
        ]

    async def _editable(self, principal: Principal, study_uid: str, annotation_id: str) -> Document:
        current = await self._annotations.find_one({"_id": annotation_id, "study_uid": study_uid})
        if current is None or current["deleted"]:
            raise ApiError("not_found", "No such annotation.")
        if current["author"]["user_id"] != principal.user_id and not principal.can(
            Permission.USERS_MANAGE
        ):
            raise ApiError("forbidden", "Only its author (or an admin) may change an annotation.")
        return current

    async def _write_own(
        self, principal: Principal, action: str, payload: dict[str, Any], changes: Document
    ) -> Change | None:
        """The change written in one round trip when the caller's own live annotation is at the
        named version; None when not, and the caller reads to say why (or to let an admin in)."""
        return await self._write(
            action,
            {
                "_id": payload["id"],
                "study_uid": payload["study_uid"],
                "version": payload["version"],
                "deleted": False,
                "author.user_id": principal.user_id,
            },
            changes,
        )

    async def _apply(
        self, action: str, current: Document, version: int, changes: Document
    ) -> Change:
        change = await self._write(action, {"_id": current["_id"], "version": version}, changes)
        if change is None:
            latest = await self._annotations.find_one({"_id": current["_id"]})
            raise ApiError(
                "stale_version",
                f"This annotation is at version {latest['version'] if latest else '?'}, "
                f"not {version}.",
                details={"current": public(latest) if latest else None},
            )
        return change

    async def _write(self, action: str, match: Document, changes: Document) -> Change | None:
        now = self._clock()
        before = await self._annotations.find_one_and_update(
            match,
            {"$set": {**changes, "updated_at": now}, "$inc": {"version": 1}},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return None
        after = {**before, **changes, "updated_at": now, "version": before["version"] + 1}
        return _change(action, before, after)

    async def _measure(self, doc: Document) -> dict[str, Any]:
        shape = Shape(
            study_uid=doc["study_uid"],
            kind=doc["kind"],
            instance_uid=doc["instance_uid"],
            frame=doc["frame"],
            points=tuple((float(x), float(y)) for x, y in doc["points"]),
        )
        return await measurement_for(self.measurer, shape)


def _change(action: str, before: Document | None, after: Document) -> Change:
    return Change(
        annotation=public(after),
        record={
            "annotation_id": after["_id"],
            "action": action,
            "version": after["version"],
            "before": _geometry(before),
            "after": _geometry(after),
        },
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

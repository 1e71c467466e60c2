"""Chat in a study room and direct messages between two users: persisted, paged, editable.

Messages are stored as given and always handled as plain text; rendering them safely is the
client's job and the catalog says so. Only the author edits or deletes a message; a deleted
message keeps its place in the history with its text removed.
"""

from __future__ import annotations

import time
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from server.auth.roles import Permission
from server.auth.service import Principal
from server.http.errors import ApiError
from server.rooms.annotations import actor
from server.rooms.batched import InsertBatcher
from server.rooms.oplog import Clock
from server.store.database import Document, IndexSpec, Store

MESSAGES = "chat_messages"
INDEXES = [IndexSpec(MESSAGES, [("conversation", 1), ("at", -1)])]
TAIL = 50


def study_conversation(study_uid: str) -> str:
    return f"study:{study_uid}"


def direct_conversation(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"dm:{first}:{second}"


class Chat:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self._messages = store[MESSAGES]
        self._new_messages = InsertBatcher(self._messages)
        self._clock = clock

    async def send(
        self,
        principal: Principal,
        *,
        conversation: str,
        text: str,
        study_uid: str | None = None,
        to_user: str | None = None,
        mentions: list[str] | None = None,
        ref: dict[str, Any] | None = None,
    ) -> Document:
        principal.require(Permission.CHAT_WRITE)
        doc: Document = {
            "_id": ObjectId(),
            "conversation": conversation,
            "study_uid": study_uid,
            "to_user": to_user,
            "author": actor(principal),
            "text": text,
            "mentions": mentions or [],
            "ref": ref,
            "at": self._clock(),
            "edited_at": None,
            "deleted": False,
        }
        await self._new_messages.insert(doc)
        return public(doc)

    async def get(self, message_id: str) -> Document:
        try:
            oid = ObjectId(message_id)
        except InvalidId:
            raise ApiError("not_found", "No such message.") from None
        doc = await self._messages.find_one({"_id": oid})
        if doc is None:
            raise ApiError("not_found", "No such message.")
        return doc

    async def edit(self, principal: Principal, message: Document, text: str) -> Document:
        return await self._change(principal, message, {"text": text, "edited_at": self._clock()})

    async def delete(self, principal: Principal, message: Document) -> Document:
        return await self._change(
            principal, message, {"text": "", "deleted": True, "edited_at": self._clock()}
        )

    async def history(
        self, conversation: str, before: str | None = None, limit: int = TAIL
    ) -> tuple[list[Document], bool]:
        """Newest first, ``limit`` messages older than ``before``; and whether more exist."""
        match: Document = {"conversation": conversation}
        if before is not None:
            match["_id"] = {"$lt": ObjectId(before)}
        cursor = self._messages.find(match).sort("_id", -1).limit(limit + 1)
        docs = [doc async for doc in cursor]
        return [public(doc) for doc in docs[:limit]], len(docs) > limit

    async def _change(self, principal: Principal, message: Document, changes: Document) -> Document:
        if message["author"]["user_id"] != principal.user_id:
            raise ApiError("forbidden", "Only the author may change a message.")
        if message["deleted"]:
            raise ApiError("not_found", "That message was deleted.")
        await self._messages.update_one({"_id": message["_id"]}, {"$set": changes})
        return public({**message, **changes})


def public(doc: Document) -> Document:
    out = {key: value for key, value in doc.items() if key != "_id"}
    # nx-27017 stores a top-level boolean written by $set as 0/1.
    out["deleted"] = bool(doc.get("deleted", False))
    out["id"] = str(doc["_id"])
    return out

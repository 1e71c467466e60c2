"""Per-user notifications: persisted first, then published for the rooms to push to
``user:<user_id>``, so a reader who was offline finds them on the next sign-in.

Collection ``notifications``: ``user_id``, ``username``, ``kind``, ``title``, ``body``,
``study_id``, ``facility``, ``created_at``, ``read_at`` (None while unread).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from server.auth.tokens import Clock
from server.auth.users import Users
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub, Unsubscribe
from server.store.database import Document, IndexSpec, Store
from server.workflow import events
from server.workflow.events import IS_NULL, Publisher, iso

log = logging.getLogger(__name__)

COLLECTION = "notifications"
INDEXES = [
    IndexSpec(COLLECTION, [("user_id", 1), ("created_at", -1)]),
    IndexSpec(COLLECTION, [("user_id", 1), ("read_at", 1)]),
]

Kind = Literal["assigned", "mentioned", "alert", "report_signed", "addendum", "escalated"]


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "kind": doc["kind"],
        "title": doc["title"],
        "body": doc["body"],
        "study_id": doc.get("study_id"),
        "facility": doc["facility"],
        "created_at": iso(doc["created_at"]),
        "read": doc.get("read_at") is not None,
    }


class Notifications:
    def __init__(self, store: Store, users: Users, publisher: Publisher, clock: Clock) -> None:
        self.collection = store[COLLECTION]
        self._users = users
        self._publisher = publisher
        self._clock = clock

    async def notify(
        self,
        username: str,
        kind: Kind,
        title: str,
        body: str,
        *,
        facility: str,
        study_id: str | None = None,
    ) -> Document | None:
        """Notify an account by username; an unknown or disabled account is skipped."""
        user = await self._users.by_username(username)
        if user is None or user.disabled:
            return None
        doc: Document = {
            "_id": uuid.uuid4().hex,
            "user_id": user.id,
            "username": user.username,
            "kind": kind,
            "title": title[:200],
            "body": body[:2000],
            "study_id": study_id,
            "facility": facility,
            "created_at": self._clock().timestamp(),
            "read_at": None,
        }
        await self.collection.insert_one(doc)
        await self._publisher.publish(
            events.NOTIFICATION_CREATED,
            {"user_id": user.id, "notification": public(doc)},
            facility,
        )
        return doc

    def subscribe(self, hub: EventHub) -> Unsubscribe:
        return hub.subscribe(events.CHAT_MENTIONED, self._on_mention)

    async def _on_mention(self, event: DomainEvent) -> None:
        """Persist a notification for each reader mentioned in a study room's chat."""
        data = event.data
        mentions = data.get("mentions")
        author = str(data.get("author") or "someone")[:64]
        if not isinstance(mentions, list) or not event.facility:
            log.warning("dropped a chat.mentioned event without mentions or facility")
            return
        text = str(data.get("text") or "")[:500]
        study_id = data.get("study_id") if isinstance(data.get("study_id"), str) else None
        for username in [m for m in mentions[:50] if isinstance(m, str) and m != author]:
            await self.notify(
                username,
                "mentioned",
                f"{author} mentioned you",
                text,
                facility=event.facility,
                study_id=study_id,
            )

    async def list(
        self, user_id: str, *, unread_only: bool, limit: int, offset: int
    ) -> tuple[list[Document], int]:
        match: Document = {"user_id": user_id}
        if unread_only:
            match["read_at"] = IS_NULL
        cursor = (
            self.collection.find(match)
            .sort([("created_at", -1), ("_id", -1)])
            .skip(offset)
            .limit(limit)
        )
        docs = [doc async for doc in cursor]
        unread = await self.collection.count_documents({"user_id": user_id, "read_at": IS_NULL})
        return docs, unread

    async def mark_read(self, user_id: str, notification_id: str) -> Document:
        await self.collection.update_one(
            {"_id": notification_id, "user_id": user_id, "read_at": IS_NULL},
            {"$set": {"read_at": self._clock().timestamp()}},
        )
        doc = await self.collection.find_one({"_id": notification_id, "user_id": user_id})
        if doc is None:
            raise ApiError("not_found", f"No notification {notification_id!r}.")
        return doc

    async def mark_all_read(self, user_id: str) -> int:
        result = await self.collection.update_many(
            {"user_id": user_id, "read_at": IS_NULL},
            {"$set": {"read_at": self._clock().timestamp()}},
        )
        return int(result.modified_count)

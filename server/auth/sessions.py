"""Sign-in sessions and their rotating refresh tokens.

A session is a family of refresh tokens. Each refresh consumes the presented token and issues the
next one; presenting an already-consumed token means it was stolen or replayed, so the whole family
is revoked and both the thief and the owner must sign in again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pymongo import ReturnDocument

from server.auth.tokens import Clock, new_refresh_token, refresh_token_hash, utc_now
from server.http.errors import ApiError
from server.store.database import IndexSpec, Store

SESSIONS = "sessions"
REFRESH_TOKENS = "refresh_tokens"
INDEXES = [
    IndexSpec(SESSIONS, [("user_id", 1)]),
    IndexSpec(REFRESH_TOKENS, [("session_id", 1)]),
]


class RefreshTokenReused(ApiError):
    """A consumed refresh token came back; its whole session has been revoked."""

    def __init__(self, session_id: str) -> None:
        super().__init__("refresh_token_reused")
        self.session_id = session_id


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str


class Sessions:
    def __init__(self, store: Store, refresh_ttl_s: int, clock: Clock = utc_now) -> None:
        self._sessions = store[SESSIONS]
        self._tokens = store[REFRESH_TOKENS]
        self._ttl_s = float(refresh_ttl_s)
        self._clock = clock

    async def start(self, user_id: str, remote: str | None) -> tuple[Session, str]:
        now = self._clock().timestamp()
        session = Session(id=uuid.uuid4().hex, user_id=user_id)
        await self._sessions.insert_one(
            {
                "_id": session.id,
                "user_id": user_id,
                "created_at": now,
                "expires_at": now + self._ttl_s,
                "revoked_at": None,
                "remote": remote,
            }
        )
        return session, await self._issue(session, now)

    async def _issue(self, session: Session, now: float) -> str:
        token = new_refresh_token()
        await self._tokens.insert_one(
            {
                "_id": refresh_token_hash(token),
                "session_id": session.id,
                "user_id": session.user_id,
                "issued_at": now,
                "expires_at": now + self._ttl_s,
                "used_at": None,
            }
        )
        return token

    async def rotate(self, token: str) -> tuple[Session, str]:
        """Consume ``token`` and return the session with its next refresh token."""
        now = self._clock().timestamp()
        token_hash = refresh_token_hash(token)
        consumed = await self._tokens.find_one_and_update(
            {"_id": token_hash, "used_at": None},
            {"$set": {"used_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if consumed is None:
            previous = await self._tokens.find_one({"_id": token_hash})
            if previous is None:
                raise ApiError("invalid_token", "The refresh token is not valid.")
            await self.revoke(previous["session_id"], "refresh_token_reused")
            raise RefreshTokenReused(previous["session_id"])
        session = Session(id=consumed["session_id"], user_id=consumed["user_id"])
        if consumed["expires_at"] <= now or not await self.is_active(session.id):
            raise ApiError("invalid_token", "The session has ended; sign in again.")
        return session, await self._issue(session, now)

    async def session_for(self, token: str) -> Session | None:
        doc = await self._tokens.find_one({"_id": refresh_token_hash(token)})
        return Session(id=doc["session_id"], user_id=doc["user_id"]) if doc else None

    async def revoke(self, session_id: str, reason: str) -> None:
        await self._sessions.update_one(
            {"_id": session_id, "revoked_at": None},
            {"$set": {"revoked_at": self._clock().timestamp(), "revoked_reason": reason}},
        )

    async def revoke_all(self, user_id: str, reason: str) -> None:
        await self._sessions.update_many(
            {"user_id": user_id, "revoked_at": None},
            {"$set": {"revoked_at": self._clock().timestamp(), "revoked_reason": reason}},
        )

    async def is_active(self, session_id: str) -> bool:
        doc = await self._sessions.find_one({"_id": session_id})
        return (
            doc is not None
            and doc.get("revoked_at") is None
            and doc["expires_at"] > self._clock().timestamp()
        )

"""Sign-in, refresh, sign-out and the per-request identity check, as plain async Python.

Routes and the Socket.IO connect handler are thin shells around this class; it can be tested
without a server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.auth import passwords
from server.auth.audit import AuditLog
from server.auth.lockout import Lockout
from server.auth.roles import Permission, Role, permissions_for
from server.auth.sessions import RefreshTokenReused, Session, Sessions
from server.auth.tokens import AccessTokens
from server.auth.users import User, Users
from server.http.errors import ApiError

# How long a node trusts its last look at a session or account before asking the store again.
# A sign-out or a disabled account takes effect on every node within this many seconds.
STATUS_CACHE_S = 5.0


@dataclass(frozen=True)
class Principal:
    """Who is calling, as every layer sees it."""

    user_id: str
    username: str
    role: Role
    facility: str
    session_id: str

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.role)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise ApiError(
                "forbidden", f"Your role ({self.role.value}) may not {permission.value}."
            )

    def may_access_facility(self, facility: str) -> bool:
        return facility == self.facility or self.can(Permission.CROSS_FACILITY)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


class AuthService:
    def __init__(
        self,
        users: Users,
        sessions: Sessions,
        tokens: AccessTokens,
        lockout: Lockout,
        audit: AuditLog,
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.tokens = tokens
        self.lockout = lockout
        self.audit = audit
        self._status_cache: dict[str, tuple[float, bool]] = {}

    async def login(self, username: str, password: str, remote: str | None) -> TokenPair:
        wait = await self.lockout.retry_after(username, remote)
        if wait:
            await self.audit.record(
                actor=username,
                action="auth.login",
                outcome="denied",
                remote=remote,
                details={"reason": "locked"},
            )
            raise ApiError(
                "account_locked",
                f"Too many failed sign-ins; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        user = await self.users.by_username(username)
        ok = await asyncio.to_thread(
            passwords.verify_password, user.password_hash if user else None, password
        )
        if user is None or not ok:
            await self.lockout.record_failure(username, remote)
            await self.audit.record(
                actor=username,
                action="auth.login",
                outcome="failure",
                remote=remote,
                details={"reason": "invalid_credentials"},
            )
            raise ApiError("invalid_credentials")
        if user.disabled:
            await self.audit.record(
                actor=username,
                action="auth.login",
                outcome="denied",
                remote=remote,
                facility=user.facility,
                details={"reason": "disabled"},
            )
            raise ApiError("account_disabled")
        await self.lockout.record_success(username)
        if passwords.needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(passwords.hash_password, password)
            await self.users.set_password_hash(user.id, new_hash)
        session, refresh = await self.sessions.start(user.id, remote)
        await self.audit.record(
            actor=user.username,
            action="auth.login",
            outcome="success",
            remote=remote,
            facility=user.facility,
            details={"session": session.id},
        )
        return self._pair(user, session, refresh)

    def _pair(self, user: User, session: Session, refresh: str) -> TokenPair:
        access = self.tokens.issue(
            user_id=user.id,
            username=user.username,
            role=user.role,
            facility=user.facility,
            session_id=session.id,
        )
        return TokenPair(access, refresh, self.tokens.ttl_s)

    async def refresh(self, refresh_token: str, remote: str | None) -> TokenPair:
        try:
            session, refresh = await self.sessions.rotate(refresh_token)
        except RefreshTokenReused as exc:
            self._status_cache.pop(exc.session_id, None)
            await self.audit.record(
                actor=None,
                action="auth.refresh",
                outcome="denied",
                remote=remote,
                details={"reason": exc.code, "session": exc.session_id},
            )
            raise
        except ApiError as exc:
            await self.audit.record(
                actor=None,
                action="auth.refresh",
                outcome="failure",
                remote=remote,
                details={"reason": exc.code},
            )
            raise
        user = await self.users.by_id(session.user_id)
        if user is None or user.disabled:
            await self.sessions.revoke(session.id, "account_disabled")
            raise ApiError("account_disabled")
        return self._pair(user, session, refresh)

    async def logout(self, principal: Principal, remote: str | None) -> None:
        await self.sessions.revoke(principal.session_id, "logout")
        self._status_cache.pop(principal.session_id, None)
        await self.audit.record(
            actor=principal.username,
            action="auth.logout",
            outcome="success",
            remote=remote,
            facility=principal.facility,
            details={"session": principal.session_id},
        )

    async def authenticate(self, access_token: str) -> Principal:
        """Verify a token and that its session and account are still live (cached briefly)."""
        principal, _ = await self.authenticate_with_expiry(access_token)
        return principal

    async def authenticate_with_expiry(self, access_token: str) -> tuple[Principal, datetime]:
        claims = self.tokens.verify(access_token)
        now = time.monotonic()
        cached = self._status_cache.get(claims.session_id)
        if cached is not None and now - cached[0] < STATUS_CACHE_S:
            live = cached[1]
        else:
            user = await self.users.by_id(claims.user_id)
            live = (
                user is not None
                and not user.disabled
                and await self.sessions.is_active(claims.session_id)
            )
            if len(self._status_cache) > 10_000:
                self._status_cache.clear()
            self._status_cache[claims.session_id] = (now, live)
        if not live:
            raise ApiError("invalid_token", "This session has ended; sign in again.")
        principal = Principal(
            user_id=claims.user_id,
            username=claims.username,
            role=claims.role,
            facility=claims.facility,
            session_id=claims.session_id,
        )
        return principal, claims.expires_at

    async def update_user(self, username: str, changes: dict[str, Any]) -> User:
        """Apply an admin's change; any change to who someone is ends their live sessions."""
        user = await self.users.update(username, changes)
        if {"disabled", "role", "facility"} & set(changes):
            await self.sessions.revoke_all(user.id, "account_changed")
            self._status_cache.clear()
        return user

"""Access tokens (short-lived JWTs) and refresh tokens (opaque, rotating, stored hashed).

Access tokens carry identity for one request or one Socket.IO connection. They are verified with
an explicit algorithm allow-list, issuer and audience, so ``alg: none``, a token signed with an
RS/ES key confusion, or one minted for another service is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from server.auth.roles import Role
from server.http.errors import ApiError

ISSUER = "noctis"
AUDIENCE = "noctis-api"
ALGORITHM = "HS256"
ALLOWED_ALGORITHMS = [ALGORITHM]
LEEWAY_S = 5
VERIFIED_CACHE_SIZE = 4096

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    username: str
    role: Role
    facility: str
    session_id: str
    expires_at: datetime


class AccessTokens:
    def __init__(self, secret_key: str, ttl_s: int, clock: Clock = utc_now) -> None:
        self._key = secret_key
        self.ttl_s = ttl_s
        self._clock = clock
        self._verified: dict[str, AccessClaims] = {}

    def issue(
        self, *, user_id: str, username: str, role: Role, facility: str, session_id: str
    ) -> str:
        now = self._clock()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "name": username,
            "role": role.value,
            "fac": facility,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl_s)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """Return the claims, or raise ``ApiError`` (invalid_token / token_expired).

        A signature, once checked, is remembered for that exact token string: every frame request
        of a scrolling reader carries the same token, and HMAC + JSON decoding was a third of the
        per-request CPU. Expiry is still checked on every call.
        """
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.pop(next(iter(self._verified)))
            self._verified[token] = claims
        if claims.expires_at.timestamp() + LEEWAY_S < self._clock().timestamp():
            raise ApiError("token_expired", "The access token has expired; refresh it.")
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=ALLOWED_ALGORITHMS,
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={
                    "require": ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "role"],
                    "verify_exp": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise ApiError("invalid_token", f"The access token is invalid: {exc}") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise ApiError("invalid_token", "The access token names an unknown role.") from None
        return AccessClaims(
            user_id=str(claims["sub"]),
            username=str(claims.get("name", "")),
            role=role,
            facility=str(claims.get("fac", "")),
            session_id=str(claims["sid"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    """Only the hash is stored, so a leaked database does not hand out live sessions."""
    return hashlib.sha256(token.encode()).hexdigest()

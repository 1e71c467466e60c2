"""Forged, tampered and foreign tokens are refused with a clear 401."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from server.auth.roles import Role
from tests.auth.test_login import bearer, error_of
from tests.conftest import TEST_SECRET, Noctis


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "noctis",
        "aud": "noctis-api",
        "sub": "000000000000000000000000",
        "name": "mallory",
        "role": "admin",
        "fac": "main",
        "sid": "s",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _real_token(noctis: Noctis) -> str:
    return await noctis.token_for("alice", Role.RADIOLOGIST)


async def test_tampered_signature(noctis: Noctis) -> None:
    token = await _real_token(noctis)
    header, payload, signature = token.split(".")
    forged_payload = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload["role"] = "admin"
    tampered = f"{header}.{_b64(forged_payload)}.{signature}"
    response = await noctis.client.get("/api/users", headers=bearer(tampered))
    assert response.status == 401
    assert await error_of(response) == "invalid_token"


async def test_alg_none_is_refused(noctis: Noctis) -> None:
    token = await _real_token(noctis)
    payload = token.split(".")[1]
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    response = await noctis.client.get("/api/me", headers=bearer(unsigned))
    assert response.status == 401
    assert await error_of(response) == "invalid_token"


@pytest.mark.parametrize(
    ("key", "claims"),
    [
        ("another-secret-key-that-is-long-enough-for-hs256-00000000000000000000", _claims()),
        (TEST_SECRET, _claims(aud="some-other-service")),
        (TEST_SECRET, _claims(iss="someone-else")),
        (TEST_SECRET, {k: v for k, v in _claims().items() if k != "exp"}),
    ],
    ids=["other-key", "wrong-audience", "wrong-issuer", "no-expiry"],
)
async def test_foreign_tokens_are_refused(
    noctis: Noctis, key: str, claims: dict[str, object]
) -> None:
    token = jwt.encode(claims, key, algorithm="HS256")
    response = await noctis.client.get("/api/me", headers=bearer(token))
    assert response.status == 401
    assert await error_of(response) == "invalid_token"


async def test_hs512_with_the_right_key_is_still_refused(noctis: Noctis) -> None:
    token = jwt.encode(_claims(), TEST_SECRET, algorithm="HS512")
    response = await noctis.client.get("/api/me", headers=bearer(token))
    assert response.status == 401


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "bearer not.a.jwt"]
)
async def test_missing_or_malformed_authorization(noctis: Noctis, header: str) -> None:
    response = await noctis.client.get("/api/me", headers={"Authorization": header})
    assert response.status == 401
    assert await error_of(response) in {"auth_required", "invalid_token"}

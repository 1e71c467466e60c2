"""Malformed requests get a clear 4xx JSON error, never a 500, and change nothing stored."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from server.appkeys import STORE
from server.auth.roles import Role
from tests.auth.test_login import bearer
from tests.conftest import Noctis, NoctisFactory


async def _counts(noctis: Noctis) -> dict[str, int]:
    store = noctis.app[STORE]
    return {
        name: await store[name].count_documents({})
        for name in ("users", "sessions", "refresh_tokens")
    }


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (
            {"username": {"$ne": None}, "password": "x"},
            "application/json",
            422,
            "validation_failed",
        ),
        (
            {"username": "alice", "password": {"$gt": ""}},
            "application/json",
            422,
            "validation_failed",
        ),
        ({"username": "alice"}, "application/json", 422, "validation_failed"),
        ({"password": "x"}, "application/json", 422, "validation_failed"),
        ({}, "application/json", 422, "validation_failed"),
        ([], "application/json", 422, "validation_failed"),
        ("not json at all", "application/json", 400, "invalid_json"),
        (
            "username=alice&password=x",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (
            {"username": "alice", "password": "x", "role": "admin"},
            "application/json",
            422,
            "validation_failed",
        ),
        ({"username": "a" * 65, "password": "x"}, "application/json", 422, "validation_failed"),
    ],
    ids=[
        "mongo-operator-username",
        "mongo-operator-password",
        "missing-password",
        "missing-username",
        "empty-object",
        "array",
        "not-json",
        "form-encoded",
        "extra-field",
        "too-long",
    ],
)
async def test_login_bad_bodies(
    noctis: Noctis, body: Any, content_type: str, status: int, code: str
) -> None:
    await noctis.add_user("alice")
    before = await _counts(noctis)
    data = body if isinstance(body, str) else json.dumps(body)
    response = await noctis.client.post(
        "/api/auth/login", data=data, headers={"Content-Type": content_type}
    )
    assert response.status == status, await response.text()
    payload = await response.json()
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    assert await _counts(noctis) == before


async def test_oversized_body_is_refused(noctis: Noctis) -> None:
    before = await _counts(noctis)
    response = await noctis.client.post(
        "/api/auth/login",
        data=io.BytesIO(b'{"username":"' + b"a" * (2 << 20) + b'","password":"x"}'),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
    assert await _counts(noctis) == before


async def test_invalid_user_creation_changes_nothing(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    before = await _counts(noctis)
    for body in (
        {"username": "Bad Name", "password": "long enough password", "role": "admin"},
        {"username": "okname", "password": "long enough password", "role": "emperor"},
        {"username": {"$where": "1"}, "password": "long enough password", "role": "admin"},
        {"username": "okname", "password": "long enough password", "role": "admin", "x": 1},
    ):
        response = await noctis.client.post("/api/users", json=body, headers=bearer(admin))
        assert response.status == 422, body
    assert await _counts(noctis) == before


async def test_unknown_route_and_method_are_json(noctis: Noctis) -> None:
    missing = await noctis.client.get("/api/nothing-here")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong_method = await noctis.client.get("/api/auth/login")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["code"] == "method_not_allowed"


async def test_security_headers_and_request_id(noctis: Noctis) -> None:
    response = await noctis.client.get("/health/live")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert len(response.headers["X-Request-Id"]) == 32
    echoed = await noctis.client.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    assert "Strict-Transport-Security" not in response.headers


async def test_hsts_only_behind_a_trusted_tls_proxy(noctis_factory: NoctisFactory) -> None:
    direct = await noctis_factory()
    spoofed = await direct.client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers
    proxied = await noctis_factory(settings_override={"trust_proxy": True})
    response = await proxied.client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")

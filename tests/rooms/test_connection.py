"""Socket.IO connections: refused without a live token, and the event boundary answers errors."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from server.auth.roles import Role
from shared.protocol import catalog
from tests.auth.test_login import bearer
from tests.conftest import TEST_SECRET, Noctis
from tests.support.sockets import server_url, socket_client


async def _refusal(noctis: Noctis, auth: Any) -> Any:
    sio = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []
    sio.on("connect_error", lambda data: reasons.append(data))
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                server_url(noctis.client), auth=auth, transports=["websocket"], wait_timeout=5
            )
    finally:
        if sio.eio.http is not None:
            await sio.eio.http.close()
    assert reasons, "the server gave no reason for the refusal"
    catalog().validate_outbound("connect_error", reasons[0])
    return reasons[0]["data"]


async def test_connect_without_token_is_refused(noctis: Noctis) -> None:
    reason = await _refusal(noctis, None)
    assert reason["error"]["code"] == "auth_required"


@pytest.mark.parametrize(
    "auth",
    [{"token": "not-a-jwt"}, {"token": ""}, {"token": {"$ne": None}}, {"tok": "x"}, "string"],
)
async def test_connect_with_bad_token_is_refused(noctis: Noctis, auth: Any) -> None:
    reason = await _refusal(noctis, auth)
    assert reason["error"]["code"] in {"auth_required", "invalid_token"}


async def test_connect_with_foreign_signed_token_is_refused(noctis: Noctis) -> None:
    import jwt

    token = jwt.encode({"sub": "x", "aud": "noctis-api"}, TEST_SECRET + "x", algorithm="HS256")
    reason = await _refusal(noctis, {"token": token})
    assert reason["error"]["code"] == "invalid_token"


async def test_connect_after_logout_is_refused(noctis: Noctis) -> None:
    token = await noctis.token_for("alice", Role.RADIOLOGIST)
    await noctis.client.post("/api/auth/logout", headers=bearer(token))
    reason = await _refusal(noctis, {"token": token})
    assert reason["error"]["code"] == "invalid_token"


async def test_valid_token_connects_and_unknown_events_get_errors(noctis: Noctis) -> None:
    token = await noctis.token_for("alice", Role.RADIOLOGIST)
    async with socket_client(noctis.client, token) as sio:
        assert sio.connected
        answer = await sio.call("no.such.event", {"x": 1}, timeout=5)
        assert answer["error"]["code"] == "unknown_event"
        renew = await sio.call("session.renew", {"token": token}, timeout=5)
        assert renew["ok"] is True
        bad = await sio.call("session.renew", {"token": 5}, timeout=5)
        assert bad["error"]["code"] == "validation_failed"


async def test_renew_cannot_switch_user(noctis: Noctis) -> None:
    alice = await noctis.token_for("alice", Role.RADIOLOGIST)
    bob = await noctis.token_for("bob", Role.RADIOLOGIST)
    async with socket_client(noctis.client, alice) as sio:
        answer = await sio.call("session.renew", {"token": bob}, timeout=5)
        assert answer["error"]["code"] == "forbidden"

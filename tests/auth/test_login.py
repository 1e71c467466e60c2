"""Sign-in, refresh rotation, sign-out and /api/me against the real app and store."""

from __future__ import annotations

from typing import Any

from server.app import AppOptions
from server.appkeys import STORE
from server.auth.roles import Role
from server.auth.tokens import LEEWAY_S
from tests.conftest import TEST_PASSWORD, Noctis, NoctisFactory
from tests.support.clock import MovableClock


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(response: Any) -> str:
    body = await response.json()
    return str(body["error"]["code"])


async def test_login_then_me(noctis: Noctis) -> None:
    await noctis.add_user("alice", Role.RADIOLOGIST, "north")
    tokens = await noctis.login("alice")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    response = await noctis.client.get("/api/me", headers=bearer(tokens["access_token"]))
    assert response.status == 200
    me = await response.json()
    assert me["username"] == "alice"
    assert me["role"] == "radiologist"
    assert me["facility"] == "north"
    assert "reports.sign" in me["permissions"]
    assert "users.manage" not in me["permissions"]
    assert "password_hash" not in me


async def test_wrong_password_and_unknown_user_look_the_same(noctis: Noctis) -> None:
    await noctis.add_user("alice")
    wrong = await noctis.client.post(
        "/api/auth/login", json={"username": "alice", "password": "not the password!"}
    )
    unknown = await noctis.client.post(
        "/api/auth/login", json={"username": "nobody", "password": "not the password!"}
    )
    assert wrong.status == unknown.status == 401
    assert await error_of(wrong) == await error_of(unknown) == "invalid_credentials"
    assert await noctis.app[STORE]["sessions"].count_documents({}) == 0


async def test_disabled_user_cannot_sign_in_and_loses_sessions(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    await noctis.add_user("bob")
    bob = await noctis.login("bob")
    response = await noctis.client.patch(
        "/api/users/bob", json={"disabled": True}, headers=bearer(admin)
    )
    assert response.status == 200
    me = await noctis.client.get("/api/me", headers=bearer(bob["access_token"]))
    assert me.status == 401
    again = await noctis.client.post(
        "/api/auth/login", json={"username": "bob", "password": TEST_PASSWORD}
    )
    assert again.status == 403
    assert await error_of(again) == "account_disabled"
    refreshed = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": bob["refresh_token"]}
    )
    assert refreshed.status == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(noctis: Noctis) -> None:
    await noctis.add_user("carol")
    first = await noctis.login("carol")
    response = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    replay = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status == 401
    assert await error_of(replay) == "refresh_token_reused"
    # The thief's replay ends the owner's session too: the newest tokens are dead.
    newest = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert newest.status == 401
    me = await noctis.client.get("/api/me", headers=bearer(second["access_token"]))
    assert me.status == 401


async def test_logout_ends_access_and_refresh(noctis: Noctis) -> None:
    await noctis.add_user("dave")
    tokens = await noctis.login("dave")
    response = await noctis.client.post(
        "/api/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status == 200
    me = await noctis.client.get("/api/me", headers=bearer(tokens["access_token"]))
    assert me.status == 401
    refreshed = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status == 401


async def test_expired_access_token_is_refused(noctis_factory: NoctisFactory) -> None:
    clock = MovableClock()
    noctis = await noctis_factory(options=AppOptions(clock=clock, bootstrap_admin=False))
    await noctis.add_user("erin")
    tokens = await noctis.login("erin")
    clock.advance(900 + LEEWAY_S + 1)
    response = await noctis.client.get("/api/me", headers=bearer(tokens["access_token"]))
    assert response.status == 401
    assert await error_of(response) == "token_expired"
    refreshed = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status == 200


async def test_expired_refresh_token_is_refused(noctis_factory: NoctisFactory) -> None:
    clock = MovableClock()
    noctis = await noctis_factory(options=AppOptions(clock=clock, bootstrap_admin=False))
    await noctis.add_user("erin")
    tokens = await noctis.login("erin")
    clock.advance(13 * 3600)
    refreshed = await noctis.client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status == 401
    assert await error_of(refreshed) == "invalid_token"


async def test_sign_in_and_failures_are_audited(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    await noctis.add_user("frank")
    await noctis.client.post(
        "/api/auth/login", json={"username": "frank", "password": "wrong password!!"}
    )
    tokens = await noctis.login("frank")
    await noctis.client.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    response = await noctis.client.get("/api/audit?actor=frank", headers=bearer(admin))
    assert response.status == 200
    entries = (await response.json())["entries"]
    seen = [(e["action"], e["outcome"]) for e in reversed(entries)]
    assert seen == [
        ("auth.login", "failure"),
        ("auth.login", "success"),
        ("auth.logout", "success"),
    ]
    assert all(e["remote"] == "127.0.0.1" for e in entries)
    only_failures = await noctis.client.get(
        "/api/audit?actor=frank&outcome=failure", headers=bearer(admin)
    )
    assert [e["outcome"] for e in (await only_failures.json())["entries"]] == ["failure"]

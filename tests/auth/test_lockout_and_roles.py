"""Back-off after failed sign-ins, and what each role may call."""

from __future__ import annotations

from server.app import AppOptions
from server.auth.lockout import LockoutPolicy
from server.auth.roles import Role
from tests.auth.test_login import bearer, error_of
from tests.conftest import TEST_PASSWORD, Noctis, NoctisFactory
from tests.support.clock import MovableClock

BAD = {"password": "definitely wrong"}


async def test_account_lockout_then_release(noctis_factory: NoctisFactory) -> None:
    clock = MovableClock()
    policy = LockoutPolicy(account_threshold=3, address_threshold=100)
    noctis = await noctis_factory(
        options=AppOptions(clock=clock, lockout_policy=policy, bootstrap_admin=False)
    )
    await noctis.add_user("alice")
    for _ in range(3):
        response = await noctis.client.post("/api/auth/login", json={"username": "alice", **BAD})
        assert response.status == 401
    locked = await noctis.client.post(
        "/api/auth/login", json={"username": "alice", "password": TEST_PASSWORD}
    )
    assert locked.status == 429
    assert await error_of(locked) == "account_locked"
    assert 0 < int(locked.headers["Retry-After"]) <= 31
    clock.advance(31)
    assert (await noctis.login("alice"))["access_token"]


async def test_backoff_grows_with_more_failures(noctis_factory: NoctisFactory) -> None:
    clock = MovableClock()
    policy = LockoutPolicy(account_threshold=2, address_threshold=100)
    noctis = await noctis_factory(
        options=AppOptions(clock=clock, lockout_policy=policy, bootstrap_admin=False)
    )
    waits = []
    for _ in range(3):
        for _ in range(2 if not waits else 1):
            await noctis.client.post("/api/auth/login", json={"username": "ghost", **BAD})
        locked = await noctis.client.post("/api/auth/login", json={"username": "ghost", **BAD})
        assert locked.status == 429
        waits.append(int(locked.headers["Retry-After"]))
        clock.advance(waits[-1])
    assert waits[0] < waits[1] < waits[2]


async def test_address_lockout_across_usernames(noctis_factory: NoctisFactory) -> None:
    policy = LockoutPolicy(account_threshold=100, address_threshold=4)
    noctis = await noctis_factory(options=AppOptions(lockout_policy=policy, bootstrap_admin=False))
    await noctis.add_user("victim")
    for i in range(4):
        await noctis.client.post("/api/auth/login", json={"username": f"guess{i}", **BAD})
    response = await noctis.client.post(
        "/api/auth/login", json={"username": "victim", "password": TEST_PASSWORD}
    )
    assert response.status == 429


async def test_only_admins_manage_users_and_read_audit(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    for role in (Role.RADIOLOGIST, Role.TECHNICIAN, Role.REFERRING_PHYSICIAN):
        token = await noctis.token_for(f"user-{role.value.replace('_', '-')}", role)
        for method, path in (("GET", "/api/users"), ("GET", "/api/audit")):
            response = await noctis.client.request(method, path, headers=bearer(token))
            assert response.status == 403, (role, path)
            assert await error_of(response) == "forbidden"
        create = await noctis.client.post(
            "/api/users",
            json={"username": "sneaky", "password": "a long enough pw!", "role": "admin"},
            headers=bearer(token),
        )
        assert create.status == 403
    listing = await noctis.client.get("/api/users", headers=bearer(admin))
    assert listing.status == 200
    assert "sneaky" not in {u["username"] for u in (await listing.json())["users"]}
    denied = await noctis.client.get("/api/audit?outcome=denied", headers=bearer(admin))
    assert len((await denied.json())["entries"]) >= 6


async def test_admin_creates_user_with_password_policy(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    weak = await noctis.client.post(
        "/api/users",
        json={"username": "nina", "password": "short", "role": "radiologist"},
        headers=bearer(admin),
    )
    assert weak.status == 422
    assert await error_of(weak) == "weak_password"
    created = await noctis.client.post(
        "/api/users",
        json={
            "username": "nina",
            "password": "a perfectly fine passphrase",
            "role": "technician",
            "facility": "north",
        },
        headers=bearer(admin),
    )
    assert created.status == 201
    assert (await created.json())["facility"] == "north"
    duplicate = await noctis.client.post(
        "/api/users",
        json={"username": "nina", "password": "a perfectly fine passphrase", "role": "admin"},
        headers=bearer(admin),
    )
    assert duplicate.status == 409
    assert (await noctis.login("nina", "a perfectly fine passphrase"))["access_token"]


async def test_admin_cannot_demote_or_disable_self(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    response = await noctis.client.patch(
        "/api/users/root", json={"disabled": True}, headers=bearer(admin)
    )
    assert response.status == 403


async def test_role_change_ends_sessions(noctis: Noctis) -> None:
    admin = await noctis.token_for("root", Role.ADMIN)
    old = await noctis.token_for("ray", Role.RADIOLOGIST)
    response = await noctis.client.patch(
        "/api/users/ray", json={"role": "technician"}, headers=bearer(admin)
    )
    assert response.status == 200
    assert (await noctis.client.get("/api/me", headers=bearer(old))).status == 401
    fresh = (await noctis.login("ray"))["access_token"]
    me = await noctis.client.get("/api/me", headers=bearer(fresh))
    assert (await me.json())["role"] == "technician"

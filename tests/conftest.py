"""Shared fixtures: one real embedded MongoDB-protocol server per test session, a fresh database
per test, and the real Noctis app on top of it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import AppOptions, build_app
from server.auth.guard import AUTH_SERVICE
from server.auth.lockout import LockoutPolicy
from server.auth.roles import Role
from server.config import Settings
from tests.support.servers import embedded_store

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-and-hs512-0123456789abcdef"
TEST_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def store_url() -> Iterator[str]:
    with embedded_store() as store:
        yield store.url


@pytest.fixture
def settings(store_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        mongo_url=store_url,
        mongo_db=f"t{uuid.uuid4().hex[:16]}",
        secret_key=TEST_SECRET,
        dicom_enabled=False,
        dicom_port=0,
    )


@dataclass
class Noctis:
    """A running app with a test client and helpers to make accounts and sign in."""

    app: web.Application
    client: TestClient[web.Request, web.Application]

    async def add_user(
        self,
        username: str,
        role: Role = Role.RADIOLOGIST,
        facility: str = "main",
        password: str = TEST_PASSWORD,
    ) -> None:
        await self.app[AUTH_SERVICE].users.create(username, password, role, facility)

    async def login(self, username: str, password: str = TEST_PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def token_for(
        self, username: str, role: Role = Role.RADIOLOGIST, facility: str = "main"
    ) -> str:
        await self.add_user(username, role, facility)
        return str((await self.login(username))["access_token"])


NoctisFactory = Callable[..., Awaitable[Noctis]]


@pytest.fixture
def noctis_factory(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    settings: Settings,
) -> NoctisFactory:
    async def make(
        settings_override: dict[str, Any] | None = None, options: AppOptions | None = None
    ) -> Noctis:
        effective = replace(settings, **(settings_override or {}))
        app = build_app(
            effective,
            options or AppOptions(bootstrap_admin=False, lockout_policy=LockoutPolicy()),
        )
        client = await aiohttp_client(app)
        return Noctis(app=app, client=client)

    return make


@pytest.fixture
async def noctis(noctis_factory: NoctisFactory) -> Noctis:
    return await noctis_factory()

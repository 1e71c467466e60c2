"""Fixtures for the archive: the real app with its DICOM gateway listening on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import AppOptions, build_app
from server.appkeys import HUB
from server.auth.lockout import LockoutPolicy
from server.auth.roles import Role
from server.config import Settings
from server.dicom.keys import DICOM_OPTIONS, GATEWAY_PORT, DicomOptions
from server.hub import DomainEvent
from tests.conftest import Noctis


@dataclass
class Archive(Noctis):
    """The running app plus the gateway's port and every hub event it published."""

    port: int = 0
    events: list[DomainEvent] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def topics(self) -> list[str]:
        return [e.topic for e in self.events]

    async def wait_for(self, topic: str, count: int = 1, within: float = 10.0) -> list[DomainEvent]:
        async def until() -> None:
            while sum(e.topic == topic for e in self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), within)
        return [e for e in self.events if e.topic == topic]

    async def admin_token(self, username: str = "admin1") -> str:
        return await self.token_for(username, Role.ADMIN)


ArchiveFactory = Callable[..., Awaitable[Archive]]


@pytest.fixture
def archive_factory(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    settings: Settings,
) -> ArchiveFactory:
    async def make(stable_after_s: float = 30.0, **overrides: Any) -> Archive:
        effective = replace(settings, dicom_enabled=True, dicom_port=0, **overrides)
        app = build_app(
            effective, AppOptions(bootstrap_admin=False, lockout_policy=LockoutPolicy())
        )
        app[DICOM_OPTIONS] = DicomOptions(stable_after_s=stable_after_s)
        events: list[DomainEvent] = []
        arrived = asyncio.Event()

        async def record(event: DomainEvent) -> None:
            events.append(event)
            arrived.set()

        app[HUB].subscribe("*", record)
        client = await aiohttp_client(app)
        return Archive(
            app=app, client=client, port=app[GATEWAY_PORT], events=events, arrived=arrived
        )

    return make


@pytest.fixture
async def archive(archive_factory: ArchiveFactory) -> Archive:
    return await archive_factory()

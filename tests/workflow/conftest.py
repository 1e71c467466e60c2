"""A running app with a movable clock, a handful of accounts, and a recorder of hub events."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from server.app import AppOptions
from server.appkeys import HUB, STORE
from server.auth.guard import AUTH_SERVICE
from server.auth.passwords import hash_password
from server.auth.roles import Role
from server.hub import ALL_TOPICS, DomainEvent
from server.workflow.service import WORKFLOW, Workflow
from shared.protocol import ProtocolError, catalog
from tests.conftest import TEST_PASSWORD, Noctis, NoctisFactory
from tests.support.clock import MovableClock


@functools.cache
def password_hash() -> str:
    return hash_password(TEST_PASSWORD)


# Topics the workflow publishes or hears whose schema lives elsewhere: the gateway's, the alert
# shape of rooms' alerts.json, and the rooms' mention hand-off.
FOREIGN = ("dicom.", "alert.raised", "alert.updated", "chat.mentioned")

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass
class WorkflowHarness:
    noctis: Noctis
    clock: MovableClock
    events: list[DomainEvent] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)

    @property
    def workflow(self) -> Workflow:
        return self.noctis.app[WORKFLOW]

    async def user(self, username: str, role: Role, facility: str = "main") -> str:
        """An account and a live session, without paying two argon2 runs per account."""
        now = self.clock().timestamp()
        await self.noctis.app[STORE]["users"].insert_one(
            {
                "_id": ObjectId(),
                "username": username,
                "display_name": username.title(),
                "role": role.value,
                "facility": facility,
                "disabled": False,
                "password_hash": password_hash(),
                "created_at": now,
                "updated_at": now,
            }
        )
        self.tokens[username] = await self.token(username)
        return self.tokens[username]

    async def token(self, username: str) -> str:
        service = self.noctis.app[AUTH_SERVICE]
        user = await service.users.by_username(username)
        assert user is not None
        session, _ = await service.sessions.start(user.id, None)
        return service.tokens.issue(
            user_id=user.id,
            username=user.username,
            role=user.role,
            facility=user.facility,
            session_id=session.id,
        )

    async def relogin(self) -> None:
        """Fresh tokens after the clock moved past their lifetime."""
        for username in self.tokens:
            self.tokens[username] = await self.token(username)

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    async def call(
        self, method: str, path: str, username: str, json: Any = None, status: int = 200
    ) -> Any:
        response = await self.noctis.client.request(
            method, path, headers=self.auth(username), json=json
        )
        body = await response.json()
        assert response.status == status, body
        return body

    async def order(self, username: str = "tech", **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "patient": {"id": "P-1", "name": "Doe^Jane", "birth_date": "19800101", "sex": "F"},
            "modality": "CT",
            "requested_procedure": "CT chest with contrast",
            "scheduled_station_ae": "CT01",
            "scheduled_at": "2026-03-02T09:30:00+00:00",
            "priority": "routine",
            "referring_physician": "drref",
        }
        body.update(overrides)
        result: dict[str, Any] = await self.call("POST", "/api/orders", username, body, 201)
        return result

    def topics(self) -> list[str]:
        return [event.topic for event in self.events]

    def of(self, topic: str) -> list[DomainEvent]:
        return [event for event in self.events if event.topic == topic]


@pytest.fixture
async def harness(noctis_factory: NoctisFactory) -> AsyncIterator[WorkflowHarness]:
    clock = MovableClock(START)
    noctis = await noctis_factory(options=AppOptions(clock=clock, bootstrap_admin=False))
    harness = WorkflowHarness(noctis=noctis, clock=clock)

    async def record(event: DomainEvent) -> None:
        if event.topic not in catalog().events and not event.topic.startswith(FOREIGN):
            harness.invalid.append(f"{event.topic}: published but not in the catalog")
        elif event.topic in catalog().events:
            try:
                catalog().validate_outbound(event.topic, dict(event.data))
            except ProtocolError as exc:
                harness.invalid.append(f"{event.topic}: {exc.message}")
        harness.events.append(event)

    noctis.app[HUB].subscribe(ALL_TOPICS, record)
    await harness.user("admin", Role.ADMIN)
    await harness.user("tech", Role.TECHNICIAN)
    await harness.user("rad1", Role.RADIOLOGIST)
    await harness.user("rad2", Role.RADIOLOGIST)
    await harness.user("drref", Role.REFERRING_PHYSICIAN)
    await harness.user("drother", Role.REFERRING_PHYSICIAN)
    yield harness
    assert not harness.invalid, "events broke the catalog"

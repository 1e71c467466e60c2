"""The workflow's services, built once per app from the store, the hub, the audit log and a clock.

Tests build the same object with a ``MovableClock`` (through ``AppOptions.clock``) and drive
time-dependent behaviour by calling ``tick()`` instead of waiting for the background task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from server.auth.audit import AuditLog
from server.auth.tokens import Clock
from server.auth.users import Users
from server.hub import EventHub
from server.store.database import Store
from server.workflow.assignment import Assignment
from server.workflow.events import Publisher
from server.workflow.intake import Intake
from server.workflow.notifications import Notifications
from server.workflow.orders import Orders
from server.workflow.studies import Studies

log = logging.getLogger(__name__)


@dataclass
class Workflow:
    studies: Studies
    orders: Orders
    intake: Intake
    notifications: Notifications
    assignment: Assignment

    @classmethod
    def build(
        cls, store: Store, hub: EventHub, audit: AuditLog, users: Users, clock: Clock
    ) -> Workflow:
        publisher = Publisher(hub)
        studies = Studies(store, publisher, audit, clock)
        notifications = Notifications(store, users, publisher, clock)
        return cls(
            studies=studies,
            orders=Orders(store, studies, clock),
            intake=Intake(studies),
            notifications=notifications,
            assignment=Assignment(studies, users, notifications),
        )

    async def tick(self) -> dict[str, int]:
        """One bounded pass of everything the clock drives; returns what it changed."""
        return {"claims_expired": await self.studies.expire_claims()}


WORKFLOW = web.AppKey("workflow", Workflow)

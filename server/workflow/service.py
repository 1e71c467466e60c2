"""The workflow's services, built once per app from the store, the hub, the audit log and a clock.

Tests build the same object with a ``MovableClock`` (through ``AppOptions.clock``) and drive
time-dependent behaviour by calling ``tick()`` instead of waiting for the background task.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.auth.audit import AuditLog
from server.auth.tokens import Clock
from server.auth.users import Users
from server.hub import EventHub
from server.store.blobs import BlobStore
from server.store.database import Store
from server.workflow.ai import AiResults
from server.workflow.ai_dicom import AiStoreListener
from server.workflow.alerts import Alerts
from server.workflow.assignment import Assignment, AutoAssign
from server.workflow.events import Publisher
from server.workflow.intake import Intake
from server.workflow.notifications import Notifications
from server.workflow.orders import Orders
from server.workflow.reports import ArchiveWriter, DraftSource, Reports
from server.workflow.stats import Statistics
from server.workflow.studies import Studies


@dataclass
class Workflow:
    studies: Studies
    orders: Orders
    intake: Intake
    notifications: Notifications
    assignment: Assignment
    auto_assign: AutoAssign
    reports: Reports
    alerts: Alerts
    ai: AiResults
    stats: Statistics
    ai_store: AiStoreListener

    @classmethod
    def build(
        cls,
        store: Store,
        hub: EventHub,
        audit: AuditLog,
        users: Users,
        clock: Clock,
        *,
        archive: ArchiveWriter,
        drafts: DraftSource,
        blobs: BlobStore,
    ) -> Workflow:
        publisher = Publisher(hub)
        studies = Studies(store, publisher, audit, clock)
        notifications = Notifications(store, users, publisher, clock)
        alerts = Alerts(store, studies, users, notifications, publisher, clock)
        assignment = Assignment(studies, users, notifications)
        ai = AiResults(store, studies, alerts, publisher, clock)
        return cls(
            studies=studies,
            orders=Orders(store, studies, clock),
            intake=Intake(store, studies),
            notifications=notifications,
            assignment=assignment,
            auto_assign=AutoAssign(store, studies, users, assignment),
            reports=Reports(
                store, studies, users, notifications, publisher, clock, archive, drafts
            ),
            alerts=alerts,
            ai=ai,
            stats=Statistics(store),
            ai_store=AiStoreListener(store, blobs, ai, audit),
        )

    async def tick(self) -> dict[str, int]:
        """One bounded pass of everything the clock drives; returns what it changed."""
        return {
            "claims_expired": await self.studies.expire_claims(),
            "overdue_flagged": await self.alerts.flag_overdue(),
            "alerts_escalated": await self.alerts.escalate_due(),
            "reports_exported": await self.reports.retry_exports(),
        }


WORKFLOW = web.AppKey("workflow", Workflow)
# Set by the composition root before start-up to plug in the rooms' Yjs drafts (without one,
# sign requests carry the text) or another archive than the DICOM gateway's ingest.
DRAFT_SOURCE = web.AppKey("workflow_draft_source", DraftSource)
ARCHIVE_WRITER = web.AppKey("workflow_archive_writer", ArchiveWriter)

"""Wiring the workflow into the app: its indexes, its routes, and one cleanup context that
builds the services, subscribes to the gateway's events and runs the background tick."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import BLOBS, HUB, STORE
from server.auth.guard import AUTH_SERVICE
from server.auth.tokens import Clock, utc_now
from server.dicom.keys import INGEST
from server.store.database import IndexSpec
from server.workflow import ai, alerts, assignment, notifications, orders, reports, studies
from server.workflow.ai_routes import routes as ai_routes
from server.workflow.archive import DicomArchiveWriter
from server.workflow.report_routes import routes as report_routes
from server.workflow.reports import NoDrafts
from server.workflow.routes import routes
from server.workflow.service import ARCHIVE_WRITER, DRAFT_SOURCE, WORKFLOW, Workflow

log = logging.getLogger(__name__)

INDEXES: list[IndexSpec] = [
    *studies.INDEXES,
    *orders.INDEXES,
    *notifications.INDEXES,
    *reports.INDEXES,
    *alerts.INDEXES,
    *ai.INDEXES,
    *assignment.INDEXES,
]

# How often the background task looks for expired claims, overdue studies and alerts to
# escalate. Each pass is bounded, so a slow store delays the next pass rather than piling up.
TICK_S = 15.0


async def _run_ticks(workflow: Workflow, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await workflow.tick()
        except Exception:
            log.exception("workflow tick failed")


def setup_workflow(app: web.Application, clock: Clock = utc_now, tick_s: float = TICK_S) -> None:
    async def workflow_ctx(app: web.Application) -> AsyncIterator[None]:
        auth = app[AUTH_SERVICE]
        workflow = Workflow.build(
            app[STORE],
            app[HUB],
            auth.audit,
            auth.users,
            clock,
            archive=app.get(ARCHIVE_WRITER) or DicomArchiveWriter(lambda: app.get(INGEST)),
            drafts=app.get(DRAFT_SOURCE) or NoDrafts(),
            blobs=app[BLOBS],
        )
        app[WORKFLOW] = workflow
        unsubscribe = [
            *workflow.intake.subscribe(app[HUB]),
            workflow.alerts.subscribe(app[HUB]),
            workflow.auto_assign.subscribe(app[HUB]),
            *workflow.ai_store.subscribe(app[HUB]),
            workflow.notifications.subscribe(app[HUB]),
        ]
        ticker = asyncio.get_running_loop().create_task(_run_ticks(workflow, tick_s))
        yield
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        for undo in unsubscribe:
            undo()
        await workflow.intake.close()

    app.cleanup_ctx.append(workflow_ctx)
    app.add_routes(routes)
    app.add_routes(report_routes)
    app.add_routes(ai_routes)

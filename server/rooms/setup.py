"""Wiring the rooms into the app: one cleanup context that builds the core, and the handlers.

Other capabilities plug in through optional app keys, read at start-up: a ``StudyDirectory``
(default: the worklist's and the archive's collections), a ``Renderer`` and a ``Measurer``
(default: the render service under ``RENDER_SERVICE`` when its context runs before this one;
without it viewports get ``service_unavailable`` and values are stored as not measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import socketio
from aiohttp import web

from server.appkeys import HUB, STORE
from server.auth.guard import AUTH_SERVICE
from server.http.render_routes import RENDER_SERVICE
from server.rooms import access, alerts, chat, direct, oplog, presence, report, sync
from server.rooms import annotations as annotation_store
from server.rooms.access import Invitations, StoreStudyDirectory, StudyAccess, StudyDirectory
from server.rooms.alerts import Alerts
from server.rooms.annotations import Annotations
from server.rooms.chat import Chat
from server.rooms.dispatch import EVENTS
from server.rooms.frames import FrameRelay, NoRenderer, Renderer
from server.rooms.handlers import register_handlers
from server.rooms.measure import Measurer, Unmeasured
from server.rooms.presence import Presence
from server.rooms.render_link import ServiceMeasurer, ServiceRenderer, StudyInstances
from server.rooms.report import ReportDrafts
from server.rooms.service import Rooms
from server.rooms.socket_channel import SocketChannel, buffered_bytes, engineio_backlog
from server.rooms.socket_server import SOCKETIO
from server.store.database import IndexSpec

log = logging.getLogger(__name__)

ROOMS = web.AppKey("rooms", Rooms)
STUDY_DIRECTORY = web.AppKey("study_directory", StudyDirectory)
ROOM_RENDERER = web.AppKey("room_renderer", Renderer)
ROOM_MEASURER = web.AppKey("room_measurer", Measurer)

INDEXES: list[IndexSpec] = [
    *oplog.INDEXES,
    *access.INDEXES,
    *presence.INDEXES,
    *annotation_store.INDEXES,
    *chat.INDEXES,
    *report.INDEXES,
    *alerts.INDEXES,
    *sync.INDEXES,
    *direct.INDEXES,
]

# The workflow's topic (server.workflow.events): the rooms hear it on the hub, never import it.
REPORT_SIGNED = "report.signed"

# A connection this far behind is cut off: engine.io queues and the transport buffers without bound.
STALLED_PACKETS = 500
STALLED_BYTES = 4 << 20
WATCH_S = 1.0


class _Drafts:
    """The workflow signs the text of the rooms' report draft; the core exists once started."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def draft_text(self, study_uid: str) -> str | None:
        return await self._app[ROOMS].reports.draft_text(study_uid)


def draft_source(app: web.Application) -> _Drafts:
    return _Drafts(app)


def setup_rooms(app: web.Application) -> None:
    register_handlers(app[EVENTS], lambda: app[ROOMS])
    app.cleanup_ctx.append(_rooms_ctx)


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    sio = app[SOCKETIO]
    channel = SocketChannel(sio)
    auth = app[AUTH_SERVICE]
    directory = app.get(STUDY_DIRECTORY) or StoreStudyDirectory(store)
    # With the render service running (its context registered before this one), frames and
    # measurements come from it; until then viewports get service_unavailable and values are
    # stored as not measured.
    service = app.get(RENDER_SERVICE)
    instances = StudyInstances(store)
    renderer = app.get(ROOM_RENDERER) or (
        ServiceRenderer(service, instances) if service else NoRenderer()
    )
    measurer = app.get(ROOM_MEASURER) or (
        ServiceMeasurer(service, instances) if service else Unmeasured()
    )
    rooms = Rooms(
        store=store,
        channel=channel,
        access=StudyAccess(directory, Invitations(store)),
        presence=Presence(store, channel, node_id=uuid.uuid4().hex),
        annotations=Annotations(store, measurer),
        chat=Chat(store),
        reports=ReportDrafts(store),
        alerts=Alerts(store),
        frames=FrameRelay(renderer, channel, engineio_backlog(sio)),
        audit=auth.audit,
        users=auth.users,
        publish=app[HUB].publish,
    )
    app[ROOMS] = rooms
    hub = app[HUB]
    unsubscribe = [
        hub.subscribe(alerts.RAISED, rooms.on_alert_event),
        hub.subscribe(alerts.UPDATED, rooms.on_alert_event),
        hub.subscribe(REPORT_SIGNED, rooms.on_report_signed),
    ]
    watchdog = asyncio.get_running_loop().create_task(_cut_off_stalled(sio))
    async with rooms.presence.running():
        yield
    watchdog.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watchdog
    for stop in unsubscribe:
        stop()
    await rooms.frames.close()


async def _cut_off_stalled(sio: socketio.AsyncServer) -> None:
    """Disconnect connections whose unread backlog keeps growing (a client that never reads)."""
    while True:
        await asyncio.sleep(WATCH_S)
        for eio_sid, socket in list(sio.eio.sockets.items()):
            try:
                behind = socket.queue.qsize() > STALLED_PACKETS
                if behind or buffered_bytes(sio, eio_sid) > STALLED_BYTES:
                    log.warning("cutting off a client that stopped reading", extra={"eio": eio_sid})
                    await sio.eio.disconnect(eio_sid)
            except Exception:
                log.exception("stalled-client check failed")

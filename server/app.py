"""The composition root: the only place where Noctis' parts are built and wired together.

Each resource (store, blob store, auth, Socket.IO) has one cleanup context that opens it on
start-up and closes it on shutdown, in reverse order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from server.appkeys import BLOBS, HUB, SETTINGS, STORE, TRUST_PROXY
from server.auth import audit, sessions, users
from server.auth.audit import AuditLog
from server.auth.guard import AUTH_SERVICE
from server.auth.lockout import Lockout, LockoutPolicy
from server.auth.routes import routes as auth_routes
from server.auth.service import AuthService
from server.auth.sessions import Sessions
from server.auth.tokens import AccessTokens, Clock, utc_now
from server.auth.users import Users, bootstrap_admin
from server.config import Settings
from server.dicom import setup as dicom_setup
from server.dicom.archive import ARCHIVE
from server.http.health import routes as health_routes
from server.http.middleware import request_context, security_headers
from server.http.render_routes import setup_render_routes
from server.http.static import setup_static
from server.hub import EventHub
from server.rooms.dispatch import EVENTS, EventRouter
from server.rooms.setup import INDEXES as ROOMS_INDEXES
from server.rooms.setup import draft_source as rooms_draft_source
from server.rooms.setup import setup_rooms
from server.rooms.socket_server import SOCKETIO, create_socket_server, install_connection_auth
from server.rooms.uploads import setup_uploads
from server.rooms.workflow_events import forward_workflow_events
from server.store.blobs import GridFSBlobStore, LocalBlobStore
from server.store.connect import open_store
from server.store.database import IndexSpec, ensure_indexes
from server.workflow import setup as workflow_setup
from server.workflow.service import DRAFT_SOURCE

log = logging.getLogger("noctis")

INDEXES: list[IndexSpec] = [
    *users.INDEXES,
    *sessions.INDEXES,
    *audit.INDEXES,
    *dicom_setup.INDEXES,
    *ROOMS_INDEXES,
]
INDEXES += workflow_setup.INDEXES


@dataclass
class AppOptions:
    """Knobs for tests and the CLI that are not operator settings."""

    clock: Clock = utc_now
    lockout_policy: LockoutPolicy = field(default_factory=LockoutPolicy)
    bootstrap_admin: bool = True
    on_admin_created: Callable[[str, str], None] | None = None


def build_app(settings: Settings, options: AppOptions | None = None) -> web.Application:
    if settings.secret_key is None:
        raise ValueError("settings.secret_key must be set (see server.config.ensure_secret_key)")
    options = options or AppOptions()
    app = web.Application(
        middlewares=[request_context, security_headers],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[HUB] = EventHub()
    app[TRUST_PROXY] = settings.trust_proxy
    sio = create_socket_server(settings)
    sio.attach(app, socketio_path="socket.io")
    app[SOCKETIO] = sio
    app[EVENTS] = EventRouter(sio)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_store(settings) as store:
            await ensure_indexes(store, INDEXES)
            app[STORE] = store
            app[BLOBS] = (
                GridFSBlobStore(store)
                if settings.blob_backend == "gridfs"
                else LocalBlobStore(settings.data_dir / "blobs")
            )
            yield
            await app[HUB].drain()

    async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        audit_log = AuditLog(store, options.clock)
        account_store = Users(store, options.clock)
        service = AuthService(
            users=account_store,
            sessions=Sessions(store, settings.refresh_token_ttl_s, options.clock),
            tokens=AccessTokens(
                settings.secret_key or "", settings.access_token_ttl_s, options.clock
            ),
            lockout=Lockout(store, options.lockout_policy, options.clock),
            audit=audit_log,
        )
        app[AUTH_SERVICE] = service
        install_connection_auth(sio, service)
        if options.bootstrap_admin:
            created = await bootstrap_admin(account_store)
            if created and options.on_admin_created:
                options.on_admin_created(*created)
        yield

    app.cleanup_ctx.extend([store_ctx, auth_ctx])
    app[DRAFT_SOURCE] = rooms_draft_source(app)
    workflow_setup.setup_workflow(app, options.clock)
    forward_workflow_events(app)
    app.add_routes(health_routes)
    app.add_routes(auth_routes)
    dicom_setup.setup_dicom(app)
    setup_render_routes(app, lambda app: app[ARCHIVE])
    setup_rooms(app)  # after the render service: rooms render and measure through it
    setup_uploads(app)
    setup_static(app)
    return app

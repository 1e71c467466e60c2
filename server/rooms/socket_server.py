"""The Socket.IO server: mounted at /socket.io, refusing any connection without a live token.

With a Redis URL the Redis manager carries emits between server processes; otherwise the
in-memory manager serves one process. Rooms and membership belong to the manager alone.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from aiohttp import web

from server.auth.service import AuthService, Principal
from server.config import Settings
from server.http.errors import ApiError
from shared.protocol import ProtocolError, catalog

log = logging.getLogger(__name__)

SOCKETIO = web.AppKey("socketio", socketio.AsyncServer)
PRINCIPAL_KEY = "principal"
MAX_MESSAGE_BYTES = 256 * 1024


def create_socket_server(settings: Settings) -> socketio.AsyncServer:
    manager: socketio.AsyncManager | None = None
    if settings.redis_url:
        manager = socketio.AsyncRedisManager(settings.redis_url)
    return socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        transports=["websocket"],
        max_http_buffer_size=MAX_MESSAGE_BYTES,
        ping_interval=20,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )


def refusal(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError({"error": {"code": code, "message": message}})


def install_connection_auth(sio: socketio.AsyncServer, auth: AuthService) -> None:
    """Authenticate in ``connect``: a connection exists only for a live, verified principal."""

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth_payload: Any = None) -> None:
        try:
            catalog().validate_event("connect", auth_payload)
            principal = await auth.authenticate(auth_payload["token"])
        except ProtocolError as exc:
            raise refusal("auth_required", "Connect with {'token': <access token>}.") from exc
        except ApiError as exc:
            raise refusal(exc.code, exc.message) from exc
        await sio.save_session(sid, {PRINCIPAL_KEY: principal})
        await sio.enter_room(sid, f"user:{principal.user_id}")


async def principal_of(sio: socketio.AsyncServer, sid: str) -> Principal:
    session = await sio.get_session(sid)
    principal = session.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise ApiError("auth_required")
    return principal

"""The Socket.IO server: mounted at /socket.io, refusing any connection without a live token.

With a Redis URL the Redis manager carries emits between server processes; otherwise the
in-memory manager serves one process. Rooms and membership belong to the manager alone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
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
EXPIRES_KEY = "expires_at"
MAX_MESSAGE_BYTES = 256 * 1024


RemoteListener = Callable[[Any], None]


class NodesRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """The Redis manager, which also tells listeners what the other nodes emit: the op log
    learns the seqs other nodes claimed from their broadcasts instead of by losing a claim."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._remote: defaultdict[str, list[RemoteListener]] = defaultdict(list)

    def on_remote(self, event: str, listener: RemoteListener) -> None:
        self._remote[event].append(listener)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        # Called for this node's own emits too; those carry its host id.
        listeners = self._remote.get(message.get("event", ""), [])
        if listeners and message.get("host_id") != self.host_id:
            data = message.get("data")
            if isinstance(data, list) and len(data) == 1 and not message.get("binary"):
                for listener in listeners:
                    try:
                        listener(data[0])
                    except Exception:
                        log.exception("remote emit listener failed")
        await super()._handle_emit(message)


def create_socket_server(settings: Settings) -> socketio.AsyncServer:
    manager: socketio.AsyncManager | None = None
    if settings.redis_url:
        manager = NodesRedisManager(settings.redis_url)
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
    # python-socketio sends ``{"message": ..., "data": ...}`` as connect_error's payload.
    return socketio.exceptions.ConnectionRefusedError(
        message, {"error": {"code": code, "message": message}}
    )


def install_connection_auth(sio: socketio.AsyncServer, auth: AuthService) -> None:
    """Authenticate in ``connect``: a connection exists only for a live, verified principal."""

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth_payload: Any = None) -> None:
        try:
            catalog().validate_event("connect", auth_payload)
            principal, expires_at = await auth.authenticate_with_expiry(auth_payload["token"])
        except ProtocolError as exc:
            raise refusal("auth_required", "Connect with {'token': <access token>}.") from exc
        except ApiError as exc:
            raise refusal(exc.code, exc.message) from exc
        await sio.save_session(sid, {PRINCIPAL_KEY: principal, EXPIRES_KEY: expires_at})
        await sio.enter_room(sid, user_room(principal.user_id))

    @sio.on("session.renew")  # type: ignore[untyped-decorator]
    async def renew(sid: str, payload: Any = None) -> dict[str, Any]:
        """A long-lived connection swaps in a fresh access token instead of reconnecting."""
        try:
            catalog().validate_event("session.renew", payload)
            current = await principal_of(sio, sid)
            principal, expires_at = await auth.authenticate_with_expiry(payload["token"])
        except (ApiError, ProtocolError) as exc:
            return exc.as_payload()
        if principal.user_id != current.user_id:
            return ApiError("forbidden", "A connection cannot change its user.").as_payload()
        await sio.save_session(sid, {PRINCIPAL_KEY: principal, EXPIRES_KEY: expires_at})
        return {"ok": True, "expires_at": expires_at.isoformat()}


def user_room(user_id: str) -> str:
    """Every connection joins its user's private room, for notifications and direct messages."""
    return f"user:{user_id}"


async def principal_of(sio: socketio.AsyncServer, sid: str) -> Principal:
    session = await sio.get_session(sid)
    principal = session.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise ApiError("auth_required")
    return principal


async def live_principal(sio: socketio.AsyncServer, sid: str) -> Principal:
    """The connection's principal, refusing once its access token has expired unrenewed."""
    session = await sio.get_session(sid)
    principal = session.get(PRINCIPAL_KEY)
    expires_at = session.get(EXPIRES_KEY)
    if not isinstance(principal, Principal) or not isinstance(expires_at, datetime):
        raise ApiError("auth_required")
    if expires_at <= datetime.now(UTC):
        await sio.emit(
            "session.expired",
            ApiError("token_expired", "Renew the access token (session.renew).").as_payload(),
            to=sid,
        )
        raise ApiError("token_expired", "Renew the access token with session.renew.")
    return principal

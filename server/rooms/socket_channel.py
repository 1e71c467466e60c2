"""The ``Channel`` over python-socketio: rooms and fan-out belong to its manager (and Redis)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import socketio

from server.rooms.frames import Backlog
from server.rooms.socket_server import NodesRedisManager


class SocketChannel:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def send(
        self, event: str, payload: Any, *, room: str, skip_sid: str | None = None
    ) -> None:
        await self.sio.emit(event, payload, to=room, skip_sid=skip_sid)

    async def send_local(self, event: str, *args: Any, sid: str) -> None:
        data: Any = args[0] if len(args) == 1 else tuple(args)
        await self.sio.emit(event, data, to=sid, ignore_queue=True)

    async def send_local_many(self, event: str, *args: Any, sids: list[str]) -> None:
        # Without a callback, python-socketio encodes the packet once for all recipients.
        data: Any = args[0] if len(args) == 1 else tuple(args)
        await self.sio.emit(event, data, to=sids, ignore_queue=True)

    async def call_local(self, event: str, *args: Any, sid: str, wait_s: float) -> bool:
        data: Any = args[0] if len(args) == 1 else tuple(args)
        try:
            await self.sio.call(event, data, to=sid, timeout=wait_s, ignore_queue=True)
        except (TimeoutError, socketio.exceptions.SocketIOError):
            return False
        return True

    async def enter(self, sid: str, room: str) -> None:
        await self.sio.enter_room(sid, room)

    async def leave(self, sid: str, room: str) -> None:
        await self.sio.leave_room(sid, room)

    def rooms_of(self, sid: str) -> set[str]:
        return set(self.sio.rooms(sid))

    def on_remote(self, event: str, listener: Callable[[Any], None]) -> None:
        if isinstance(self.sio.manager, NodesRedisManager):
            self.sio.manager.on_remote(event, listener)


def engineio_backlog(sio: socketio.AsyncServer) -> Backlog:
    """The outgoing queue length of a local Socket.IO connection (engine.io has no backpressure)."""

    def backlog(sid: str) -> int:
        with contextlib.suppress(Exception):
            eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
            socket = sio.eio.sockets.get(eio_sid)
            if socket is not None:
                return int(socket.queue.qsize())
        return 0

    return backlog


def buffered_bytes(sio: socketio.AsyncServer, eio_sid: str) -> int:
    """Bytes the aiohttp transport holds for a connection: it buffers writes without limit."""
    with contextlib.suppress(Exception):
        environ = sio.environ.get(eio_sid) or {}
        transport = getattr(environ.get("aiohttp.request"), "transport", None)
        if transport is not None:
            return int(transport.get_write_buffer_size())
    return 0

"""Real python-socketio clients connected to a test server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import socketio
from aiohttp.test_utils import TestClient


def server_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


@contextlib.asynccontextmanager
async def socket_client(
    client: TestClient[Any, Any], token: str | None, **kwargs: Any
) -> AsyncIterator[socketio.AsyncClient]:
    sio = socketio.AsyncClient(reconnection=False, **kwargs)
    auth = {"token": token} if token is not None else None
    await sio.connect(server_url(client), auth=auth, transports=["websocket"], wait_timeout=5)
    try:
        yield sio
    finally:
        await sio.disconnect()

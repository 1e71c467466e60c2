"""Helpers for real Socket.IO clients in room tests: inboxes per event, bounded waits."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import socketio

WAIT_S = 10.0


class Inbox:
    """Collects what a client receives, per event name."""

    def __init__(self, sio: socketio.AsyncClient, *events: str) -> None:
        self.queues: defaultdict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        for event in events:
            sio.on(event, self._handler(event))

    def _handler(self, event: str) -> Any:
        async def handle(*args: Any) -> None:
            await self.queues[event].put(args[0] if len(args) == 1 else args)

        return handle

    async def next(self, event: str) -> Any:
        return await asyncio.wait_for(self.queues[event].get(), WAIT_S)

    async def until(self, event: str, predicate: Any) -> Any:
        """The first payload of ``event`` matching ``predicate`` (bounded in time)."""

        async def scan() -> Any:
            while True:
                payload = await self.queues[event].get()
                if predicate(payload):
                    return payload

        return await asyncio.wait_for(scan(), WAIT_S)

    def drain(self, event: str) -> list[Any]:
        out = []
        while not self.queues[event].empty():
            out.append(self.queues[event].get_nowait())
        return out


async def call(sio: socketio.AsyncClient, event: str, payload: Any) -> Any:
    return await sio.call(event, payload, timeout=WAIT_S)

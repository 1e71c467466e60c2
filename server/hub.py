"""A small in-process event hub: how the gateway and the workflow tell the rooms what happened.

Publishers (``dicom/``, ``workflow/``) never import ``rooms/``; the rooms subscribe here and turn
events into Socket.IO emits. Across several processes the Socket.IO Redis manager carries the
emits, so this hub stays local on purpose. A failing subscriber is logged and never stops the
publisher or the other subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DomainEvent:
    """``topic`` names what happened (``instance.stored``); ``data`` is JSON-ready."""

    topic: str
    data: Mapping[str, Any] = field(default_factory=dict)
    facility: str | None = None


Subscriber = Callable[[DomainEvent], Awaitable[None]]
Unsubscribe = Callable[[], None]

ALL_TOPICS = "*"


class EventHub:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, list[Subscriber]] = defaultdict(list)
        self._pending: set[asyncio.Task[None]] = set()

    def subscribe(self, topic: str, subscriber: Subscriber) -> Unsubscribe:
        self._subscribers[topic].append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers[topic]:
                self._subscribers[topic].remove(subscriber)

        return unsubscribe

    async def publish(self, event: DomainEvent) -> None:
        """Deliver to every subscriber and wait for them, so ordering per publisher holds."""
        for subscriber in [*self._subscribers[event.topic], *self._subscribers[ALL_TOPICS]]:
            try:
                await subscriber(event)
            except Exception:
                log.exception("event subscriber failed", extra={"topic": event.topic})

    def publish_soon(self, event: DomainEvent) -> None:
        """Fire-and-forget for callers that must not wait (e.g. a DIMSE thread hand-off)."""
        task = asyncio.get_running_loop().create_task(self.publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

"""The one error boundary for Socket.IO events: validate, authorize, rate-limit, call, answer.

Handlers are registered by catalog name and receive the caller's ``Principal`` and a payload that
already matches the catalog schema. Whatever they raise becomes an ``{"error": ...}`` answer on
the acknowledgement; nothing a client sends can kill its connection's handler loop or the server.
Unknown events get an ``unknown_event`` error instead of silence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web

from server.auth.service import Principal
from server.http.errors import ApiError
from server.rooms.socket_server import live_principal
from shared.protocol import ProtocolError, catalog

log = logging.getLogger(__name__)

Ack = dict[str, Any]
Handler = Callable[[Principal, str, Any], Awaitable[Ack | None]]


@dataclass
class TokenBucket:
    """Per-connection budget: ``rate`` events a second with bursts up to ``burst``."""

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    refusals: int = 0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        """Refusals are forgiven only once the bucket has refilled: a client flooding at many
        times the rate keeps earning the odd token, and must still be cut off."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= self.burst:
            self.refusals = 0
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refusals += 1
        return False


def error_ack(code: str, message: str, details: Any = None) -> Ack:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


class EventRouter:
    """Registers catalog events on a Socket.IO server behind one boundary."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        *,
        rate: float = 60.0,
        burst: float = 120.0,
        cut_off_after: int = 200,
    ) -> None:
        self.sio = sio
        self.handlers: dict[str, Handler] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._rate = rate
        self._burst = burst
        self._cut_off_after = cut_off_after
        self._disconnect_hooks: list[Callable[[str], Awaitable[None]]] = []
        sio.on("*", self._unknown)
        sio.on("disconnect", self._disconnected)

    def on(self, name: str) -> Callable[[Handler], Handler]:
        spec = catalog().events.get(name)
        if spec is None or spec.direction == "server->client":
            raise ValueError(f"{name} is not a client->server event in shared/protocol")

        def register(handler: Handler) -> Handler:
            self.handlers[name] = handler

            async def entry(sid: str, payload: Any = None) -> Ack:
                return await self.dispatch(name, sid, payload)

            self.sio.on(name, entry)
            return handler

        return register

    async def dispatch(self, name: str, sid: str, payload: Any) -> Ack:
        bucket = self._buckets.setdefault(sid, TokenBucket(self._rate, self._burst))
        if not bucket.take():
            if bucket.refusals >= self._cut_off_after:
                log.warning("cutting off a flooding client", extra={"sid": sid, "event": name})
                await self.sio.disconnect(sid)
            return error_ack("rate_limited", "Too many events; slow down.")
        try:
            principal = await live_principal(self.sio, sid)
            catalog().validate_event(name, payload)
            result = await self.handlers[name](principal, sid, payload)
        except ApiError as exc:
            return exc.as_payload()
        except ProtocolError as exc:
            return exc.as_payload()
        except Exception:
            log.exception("event handler failed", extra={"sid": sid, "event": name})
            return error_ack("internal_error", "Something went wrong on the server.")
        return {"ok": True, **(result or {})}

    async def _unknown(self, event: str, sid: str, *args: Any) -> Ack:
        return error_ack("unknown_event", f"unknown event {event[:64]!r}")

    def on_disconnect(self, hook: Callable[[str], Awaitable[None]]) -> None:
        """Socket.IO allows one disconnect handler; capabilities share it through here."""
        self._disconnect_hooks.append(hook)

    async def _disconnected(self, sid: str, *args: Any) -> None:
        self._buckets.pop(sid, None)
        for hook in self._disconnect_hooks:
            try:
                await hook(sid)
            except Exception:
                log.exception("disconnect hook failed", extra={"sid": sid})


EVENTS = web.AppKey("events", EventRouter)

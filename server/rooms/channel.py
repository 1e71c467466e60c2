"""How the room cores reach clients: a small ``Channel`` protocol, so they never import socketio.

The Socket.IO adapter (``socket_channel.py``) is a few lines over ``AsyncServer.emit``; tests
drive the cores through ``MemoryChannel``, which records every send and keeps its own rooms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Channel(Protocol):
    async def send(
        self, event: str, payload: Any, *, room: str, skip_sid: str | None = None
    ) -> None:
        """Deliver to every connection in ``room`` (on every node)."""

    async def send_local(self, event: str, *args: Any, sid: str) -> None:
        """Deliver to one connection held by this node, bypassing the inter-node queue."""

    async def send_local_many(self, event: str, *args: Any, sids: list[str]) -> None:
        """Deliver one message to several connections held by this node, encoded once."""

    async def call_local(self, event: str, *args: Any, sid: str, wait_s: float) -> bool:
        """As ``send_local``, then wait for the client's acknowledgement; False if none came."""

    async def enter(self, sid: str, room: str) -> None: ...

    async def leave(self, sid: str, room: str) -> None: ...

    def rooms_of(self, sid: str) -> set[str]:
        """The rooms of a connection held by this node."""

    def on_remote(self, event: str, listener: Callable[[Any], None]) -> None:
        """Call ``listener`` with the payload of each ``event`` another node sends; unchecked
        input. One node alone never calls it."""


@dataclass
class Sent:
    event: str
    payload: Any
    room: str | None = None
    sid: str | None = None
    skip_sid: str | None = None
    ack: bool = False


@dataclass
class MemoryChannel:
    """An in-memory channel: records what was sent, and to whom it would have gone."""

    sent: list[Sent] = field(default_factory=list)
    members: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unresponsive: set[str] = field(default_factory=set)
    remote: defaultdict[str, list[Callable[[Any], None]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    async def send(
        self, event: str, payload: Any, *, room: str, skip_sid: str | None = None
    ) -> None:
        self.sent.append(Sent(event, payload, room=room, skip_sid=skip_sid))

    async def send_local(self, event: str, *args: Any, sid: str) -> None:
        self.sent.append(Sent(event, args[0] if len(args) == 1 else args, sid=sid))

    async def send_local_many(self, event: str, *args: Any, sids: list[str]) -> None:
        for sid in sids:
            await self.send_local(event, *args, sid=sid)

    async def call_local(self, event: str, *args: Any, sid: str, wait_s: float) -> bool:
        self.sent.append(Sent(event, args[0] if len(args) == 1 else args, sid=sid, ack=True))
        return sid not in self.unresponsive

    async def enter(self, sid: str, room: str) -> None:
        self.members[room].add(sid)

    async def leave(self, sid: str, room: str) -> None:
        self.members[room].discard(sid)

    def rooms_of(self, sid: str) -> set[str]:
        return {room for room, sids in self.members.items() if sid in sids}

    def on_remote(self, event: str, listener: Callable[[Any], None]) -> None:
        self.remote[event].append(listener)

    def received(self, sid: str, event: str | None = None) -> list[Any]:
        """Payloads that reached ``sid`` (through a room it is in, or directly)."""
        out = []
        for sent in self.sent:
            if event is not None and sent.event != event:
                continue
            if sent.sid == sid or (
                sent.room is not None and sid in self.members[sent.room] and sent.skip_sid != sid
            ):
                out.append(sent.payload)
        return out

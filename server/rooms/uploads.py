"""The ``uploads`` room: technicians and admins watch DICOM arrivals of their facility live.

The archive publishes ``dicom.*`` events on the hub and knows nothing of Socket.IO; this module
subscribes and emits each one to ``uploads:<facility>``, where only members of that facility
(or admins who may see any) have joined.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.appkeys import HUB
from server.auth.roles import Permission
from server.auth.service import Principal
from server.http.errors import ApiError
from server.hub import DomainEvent
from server.rooms.dispatch import EVENTS
from server.rooms.socket_server import SOCKETIO

TOPICS = (
    "dicom.association.opened",
    "dicom.instance.stored",
    "dicom.instance.failed",
    "dicom.association.closed",
    "dicom.study.stable",
    "dicom.mpps.updated",
)


def uploads_room(facility: str) -> str:
    return f"uploads:{facility}"


def _facility(principal: Principal, payload: dict[str, Any] | None) -> str:
    if not principal.can(Permission.UPLOADS_WATCH):
        raise ApiError("forbidden", "Only technicians and admins watch uploads.")
    requested = (payload or {}).get("facility") or principal.facility
    if requested != principal.facility and not principal.can(Permission.CROSS_FACILITY):
        raise ApiError("forbidden", "You may only watch your own facility's uploads.")
    return str(requested)


def setup_uploads(app: web.Application) -> None:
    sio = app[SOCKETIO]
    events = app[EVENTS]

    @events.on("uploads.join")
    async def join(principal: Principal, sid: str, payload: Any) -> dict[str, Any]:
        facility = _facility(principal, payload)
        await sio.enter_room(sid, uploads_room(facility))
        return {"facility": facility}

    @events.on("uploads.leave")
    async def leave(principal: Principal, sid: str, payload: Any) -> dict[str, Any]:
        facility = (payload or {}).get("facility") or principal.facility
        await sio.leave_room(sid, uploads_room(str(facility)))
        return {}

    async def relay(event: DomainEvent) -> None:
        if event.facility is None:
            return
        await sio.emit(
            "uploads.event",
            {"topic": event.topic, "facility": event.facility, "data": dict(event.data)},
            room=uploads_room(event.facility),
        )

    for topic in TOPICS:
        app[HUB].subscribe(topic, relay)

"""Relays the workflow's live hub events to browsers.

The workflow never imports the rooms; it publishes on the hub, and this relay emits worklist
changes to the facility's worklist room (joined with ``worklist.join``) and notifications to their
user's private room. Topics and payloads are in ``shared/protocol/events/worklist.json``.
"""

from __future__ import annotations

from aiohttp import web

from server.appkeys import HUB
from server.hub import DomainEvent
from server.rooms.oplog import worklist_room
from server.rooms.socket_server import SOCKETIO, user_room

TO_WORKLIST = ("worklist.changed", "study.status_changed", "report.signed")
TO_USER = ("notification.created",)


def forward_workflow_events(app: web.Application) -> None:
    sio = app[SOCKETIO]

    async def to_worklist(event: DomainEvent) -> None:
        if event.facility is not None:
            await sio.emit(event.topic, dict(event.data), room=worklist_room(event.facility))

    async def to_user(event: DomainEvent) -> None:
        user_id = event.data.get("user_id")
        if isinstance(user_id, str) and user_id:
            await sio.emit(event.topic, dict(event.data), room=user_room(user_id))

    for topic in TO_WORKLIST:
        app[HUB].subscribe(topic, to_worklist)
    for topic in TO_USER:
        app[HUB].subscribe(topic, to_user)

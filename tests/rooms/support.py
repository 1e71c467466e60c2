"""Building the rooms core over a real store and an in-memory channel, plus a real renderer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import cv2
import numpy as np

from server.auth.audit import AuditLog
from server.auth.roles import Role
from server.auth.service import Principal
from server.auth.users import Users
from server.hub import DomainEvent
from server.rooms.access import Invitations, StoreStudyDirectory, StudyAccess
from server.rooms.alerts import Alerts
from server.rooms.annotations import Annotations
from server.rooms.channel import MemoryChannel
from server.rooms.chat import Chat
from server.rooms.frames import Frame, FrameRelay, FrameRequest
from server.rooms.measure import Unmeasured
from server.rooms.presence import Presence
from server.rooms.report import ReportDrafts
from server.rooms.service import Rooms
from server.store.database import Store

STUDY = "1.2.840.99.1"
OTHER_STUDY = "1.2.840.99.2"
PASSWORD = "correct horse battery staple"


class SliceRenderer:
    """Renders a synthetic 512x512 CT-like slice with OpenCV: real pixels, real JPEG cost.

    Stands in for the render service (a separate branch) behind the rooms' ``Renderer``
    protocol; it counts renders so tests can see sharing.
    """

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.renders = 0
        self.gate = gate

    async def render(self, request: FrameRequest) -> Frame:
        if self.gate is not None:
            await self.gate.wait()
        self.renders += 1
        return await asyncio.to_thread(_render, request)


def _render(request: FrameRequest) -> Frame:
    size = 512
    yy, xx = np.mgrid[0:size, 0:size]
    radius = 100 + (request.frame % 300) // 3
    image = np.where((xx - 256) ** 2 + (yy - 256) ** 2 < radius**2, 200, 30).astype(np.uint8)
    width, height = request.canvas
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return Frame(encoded.tobytes(), "image/jpeg", width, height)


class Published(list[DomainEvent]):
    async def __call__(self, event: DomainEvent) -> None:
        self.append(event)


async def make_user(
    store: Store, username: str, role: Role = Role.RADIOLOGIST, facility: str = "main"
) -> Principal:
    user = await Users(store).create(username, PASSWORD, role, facility)
    return Principal(user.id, user.username, user.role, user.facility, uuid.uuid4().hex)


async def add_study(store: Store, study_uid: str = STUDY, facility: str = "main") -> None:
    await store["studies"].insert_one({"StudyInstanceUID": study_uid, "facility": facility})


def make_rooms(store: Store, channel: MemoryChannel | None = None, **kwargs: Any) -> Rooms:
    channel = channel or MemoryChannel()
    return Rooms(
        store=store,
        channel=channel,
        access=StudyAccess(StoreStudyDirectory(store), Invitations(store)),
        presence=Presence(store, channel, node_id="node-a"),
        annotations=Annotations(store, Unmeasured()),
        chat=Chat(store),
        reports=ReportDrafts(store, compact_every=kwargs.pop("compact_every", 200)),
        alerts=Alerts(store),
        frames=FrameRelay(
            kwargs.pop("renderer", SliceRenderer()), channel, kwargs.pop("backlog", lambda s: 0)
        ),
        audit=AuditLog(store),
        users=Users(store),
        publish=kwargs.pop("publish", Published()),
    )

"""Building the rooms core over a real store and an in-memory channel, plus a real renderer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

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


def _phantom(size: int = 512) -> npt.NDArray[np.int16]:
    """A CT-like slice in HU: air, a water disc with a bone ring, and fixed noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(xx - size / 2, yy - size / 2)
    hu = np.full((size, size), -1000.0)
    hu[radius < size * 0.42] = 40.0
    hu[(radius > size * 0.36) & (radius < size * 0.40)] = 900.0
    hu += np.random.default_rng(5).normal(0, 25, (size, size))
    return hu.astype(np.int16)


PHANTOM = _phantom()


class SliceRenderer:
    """Window/level and JPEG-encode a synthetic CT slice with numpy and OpenCV: real pixels,
    real encoding cost (a few ms a frame), each slice index shifted so frames differ.

    Stands in for the render service (another branch) behind the rooms' ``Renderer``
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
    centre = request.window_center if request.window_center is not None else 40.0
    width = request.window_width if request.window_width is not None else 400.0
    low = centre - width / 2
    shifted = np.roll(PHANTOM, request.frame % 300, axis=1)
    windowed = np.clip(shifted, low, low + width)  # convertScaleAbs would mirror values below
    grey = cv2.convertScaleAbs(windowed, alpha=255.0 / width, beta=-low * 255.0 / width)
    columns, rows = request.canvas
    if (columns, rows) != grey.shape[::-1]:
        grey = cv2.resize(grey, (columns, rows), interpolation=cv2.INTER_AREA)
    jpeg_quality = 85 if request.quality == "final" else 50
    ok, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    return Frame(encoded.tobytes(), "image/jpeg", columns, rows)


class Published(list[DomainEvent]):
    async def __call__(self, event: DomainEvent) -> None:
        self.append(event)


async def make_user(
    store: Store, username: str, role: Role = Role.RADIOLOGIST, facility: str = "main"
) -> Principal:
    user = await Users(store).create(username, PASSWORD, role, facility)
    return Principal(user.id, user.username, user.role, user.facility, uuid.uuid4().hex)


async def add_study(store: Store, study_uid: str = STUDY, facility: str = "main") -> None:
    await store["dicom_studies"].insert_one({"_id": study_uid, "facility": facility})


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

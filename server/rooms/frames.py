"""Rendered frames over the room: latest wins per viewer, identical renders shared, bounded.

Each connection has one lane: at most one render in flight and one request waiting; a newer
request replaces the waiting one. Identical requests (same key: everything that changes the
pixels) in flight at once are rendered once and recently rendered frames are kept, so fifty
followers of one presenter cost one render. A frame is sent only when the connection's outgoing
queue is short; while it is not, newer frames replace older ones, so a slow client gets fewer
frames and never an unbounded queue. Frames go straight to the viewer's own connection on this
node, never through the inter-node queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.http.errors import ApiError
from server.rooms.channel import Channel

log = logging.getLogger(__name__)

MAX_BACKLOG = 8
BACKLOG_WAIT_S = 0.01
BACKLOG_GIVE_UP_S = 10.0
RECENT_FRAMES = 64


@dataclass(frozen=True)
class FrameRequest:
    """Everything that changes a frame's pixels: the render key."""

    study_uid: str
    instance_uid: str
    frame: int
    window_center: float | None
    window_width: float | None
    zoom: float
    pan: tuple[float, float]
    rotation: int
    flip_h: bool
    flip_v: bool
    invert: bool
    canvas: tuple[int, int]

    @classmethod
    def from_viewport(cls, study_uid: str, viewport: dict[str, Any]) -> FrameRequest:
        if "instance_uid" not in viewport or "canvas" not in viewport:
            raise ApiError("validation_failed", "a rendered viewport needs instance_uid and canvas")
        pan = viewport.get("pan", [0.0, 0.0])
        canvas = viewport["canvas"]
        return cls(
            study_uid=study_uid,
            instance_uid=viewport["instance_uid"],
            frame=int(viewport.get("frame", 0)),
            window_center=viewport.get("window_center"),
            window_width=viewport.get("window_width"),
            zoom=float(viewport.get("zoom", 1.0)),
            pan=(float(pan[0]), float(pan[1])),
            rotation=int(viewport.get("rotation", 0)),
            flip_h=bool(viewport.get("flip_h", False)),
            flip_v=bool(viewport.get("flip_v", False)),
            invert=bool(viewport.get("invert", False)),
            canvas=(int(canvas[0]), int(canvas[1])),
        )

    def key(self) -> str:
        """The same on every node, so clients can tell identical frames apart from new ones."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Frame:
    data: bytes
    content_type: str
    width: int
    height: int


class Renderer(Protocol):
    async def render(self, request: FrameRequest) -> Frame:
        """Render one frame; raises ``ApiError`` (e.g. ``not_found``) when it cannot."""


class Backlog(Protocol):
    def __call__(self, sid: str) -> int:
        """Packets waiting to be written to this connection."""


@dataclass
class _Lane:
    busy: bool = False
    pending: tuple[FrameRequest, dict[str, Any]] | None = None


@dataclass
class FrameStats:
    renders: int = 0
    shared: int = 0
    superseded: int = 0
    sent: int = 0
    skipped_slow: int = 0


@dataclass
class FrameRelay:
    renderer: Renderer
    channel: Channel
    backlog: Backlog
    max_backlog: int = MAX_BACKLOG
    stats: FrameStats = field(default_factory=FrameStats)
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _inflight: dict[FrameRequest, asyncio.Future[Frame]] = field(default_factory=dict)
    _recent: OrderedDict[FrameRequest, Frame] = field(default_factory=OrderedDict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def request(self, sid: str, request: FrameRequest, viewport: dict[str, Any]) -> None:
        """Queue a frame for ``sid``; returns at once. A waiting older request is dropped."""
        lane = self._lanes.setdefault(sid, _Lane())
        if lane.pending is not None:
            self.stats.superseded += 1
        lane.pending = (request, viewport)
        if not lane.busy:
            lane.busy = True
            task = asyncio.get_running_loop().create_task(self._drain(sid, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def forget(self, sid: str) -> None:
        lane = self._lanes.pop(sid, None)
        if lane is not None:
            lane.pending = None

    async def render(self, request: FrameRequest) -> Frame:
        cached = self._recent.get(request)
        if cached is not None:
            self._recent.move_to_end(request)
            self.stats.shared += 1
            return cached
        running = self._inflight.get(request)
        if running is not None:
            self.stats.shared += 1
            return await asyncio.shield(running)
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._inflight[request] = future
        try:
            frame = await self.renderer.render(request)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) re-raise it
            raise
        finally:
            self._inflight.pop(request, None)
        self.stats.renders += 1
        future.set_result(frame)
        self._recent[request] = frame
        while len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return frame

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self, sid: str, lane: _Lane) -> None:
        try:
            while lane.pending is not None and self._lanes.get(sid) is lane:
                request, viewport = lane.pending
                lane.pending = None
                try:
                    frame = await self.render(request)
                except ApiError as exc:
                    await self.channel.send_local(
                        "frame.error",
                        {"study_uid": request.study_uid, **exc.as_payload()},
                        sid=sid,
                    )
                    continue
                if not await self._room_to_send(sid, lane):
                    continue
                meta = {
                    "study_uid": request.study_uid,
                    "instance_uid": request.instance_uid,
                    "frame": request.frame,
                    "key": request.key(),
                    "content_type": frame.content_type,
                    "width": frame.width,
                    "height": frame.height,
                    "quality": "final",
                    "viewport": viewport,
                }
                await self.channel.send_local("frame", meta, frame.data, sid=sid)
                self.stats.sent += 1
        except Exception:
            log.exception("frame lane failed", extra={"sid": sid})
        finally:
            lane.busy = False
            if self._lanes.get(sid) is lane and lane.pending is None:
                del self._lanes[sid]

    async def _room_to_send(self, sid: str, lane: _Lane) -> bool:
        """Wait while the connection is backed up; False when a newer frame should go instead."""
        waited = 0.0
        while self.backlog(sid) > self.max_backlog:
            if lane.pending is not None or waited >= BACKLOG_GIVE_UP_S:
                self.stats.skipped_slow += 1
                return False
            await asyncio.sleep(BACKLOG_WAIT_S)
            waited += BACKLOG_WAIT_S
        return True


class NoRenderer:
    """Until a render service is wired, viewports get a clear error instead of silence."""

    async def render(self, request: FrameRequest) -> Frame:
        raise ApiError("service_unavailable", "No render service is connected to the rooms.")


def engineio_backlog(sio: Any) -> Backlog:
    """The outgoing queue length of a local Socket.IO connection (engine.io has no backpressure)."""

    def backlog(sid: str) -> int:
        with contextlib.suppress(Exception):
            eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
            socket = sio.eio.sockets.get(eio_sid)
            if socket is not None:
                return int(socket.queue.qsize())
        return 0

    return backlog

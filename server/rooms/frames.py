"""Rendered frames over the room: latest wins per viewer, identical renders shared, bounded.

Each connection has one lane: at most ``WINDOW`` frames in flight (rendering, or sent and not yet
acknowledged by the client) and one request waiting; a newer request replaces the waiting one.
Identical requests (same key: everything that changes the pixels) in flight at once are rendered
once and recently rendered frames are kept, so fifty followers of one presenter cost one render.

While a viewer's viewport keeps changing (scrolling, dragging the window) its frames are rendered
at the interactive quality, cheap and quick; once no new viewport has come for ``SETTLE_S`` the
relay renders the same view once more at the final quality and sends it tagged ``final``. Each
follower's lane settles on its own, and their final frames share one render like any other.

Engine.IO has no backpressure: the aiohttp transport buffers whatever is written, without limit.
So a lane works on credit: at most ``MAX_UNCONFIRMED`` frames sent and not yet confirmed by an
acknowledgement, and while it waits for one, newer requests replace older ones: a slow client gets
fewer frames, never a growing queue. Only every ``ACK_EVERY``-th frame of a lane asks for an
acknowledgement (confirming it and all before it); the others are gathered with the other lanes
sending the same frame in the same loop turn and go out as one emit, encoded once: fifty followers
of one presenter cost one packet build, not fifty packets and fifty acknowledgements. Frames go
straight to the viewers' own connections on this node, never through the inter-node queue.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from server.http.errors import ApiError
from server.rooms.channel import Channel

log = logging.getLogger(__name__)

MAX_BACKLOG = 8
ACK_TIMEOUT_S = 5.0
# Every ACK_EVERY-th frame of a lane asks for an acknowledgement; a lane stops sending once
# MAX_UNCONFIRMED frames are out past the last acknowledged one. More than ACK_EVERY, so the
# acknowledgement a lane waits for was asked for a frame earlier and is usually back already; not
# much more, because a client slower than the presenter holds that many frames queued, each one
# latency (measured: eight in flight tripled the followers' latency of two under load).
ACK_EVERY = 3
MAX_UNCONFIRMED = ACK_EVERY + 1
# How long a frame waits for the other lanes sending it: the lane that rendered it resumes a few
# loop turns before the ones that waited on its render.
GATHER_S = 0.002
BACKLOG_WAIT_S = 0.01
BACKLOG_GIVE_UP_S = 10.0
RECENT_FRAMES = 64
# Quiet time after the last viewport before the final-quality frame of that view is sent.
SETTLE_S = 0.25
INTERACTIVE = "interactive"
FINAL = "final"


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
    quality: str = INTERACTIVE

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
        return _key(self)


@functools.lru_cache(maxsize=RECENT_FRAMES * 4)
def _key(request: FrameRequest) -> str:
    # Asked once per follower per frame: fifty followers share one hash.
    return hashlib.sha256(repr(request).encode()).hexdigest()[:16]


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
    sent: int = 0
    confirmed: int = 0
    credit: asyncio.Event = field(default_factory=asyncio.Event)
    settle: asyncio.TimerHandle | None = None
    moved_at: float = 0.0
    latest: tuple[FrameRequest, dict[str, Any]] | None = None

    def confirm(self, number: int) -> None:
        self.confirmed = max(self.confirmed, number)
        self.credit.set()

    async def wait_for_credit(self) -> None:
        while self.sent - self.confirmed >= MAX_UNCONFIRMED:
            self.credit.clear()
            await self.credit.wait()

    def take(self) -> tuple[FrameRequest, dict[str, Any]] | None:
        pending, self.pending = self.pending, None
        return pending


@dataclass
class FrameStats:
    renders: int = 0
    final_renders: int = 0
    shared: int = 0
    superseded: int = 0
    sent: int = 0
    skipped_slow: int = 0
    unacknowledged: int = 0
    group_emits: int = 0


@dataclass
class _Group:
    """One frame for the lanes that send it in the same loop turn: one emit, encoded once."""

    meta: dict[str, Any]
    data: bytes
    sids: list[str]


@dataclass
class FrameRelay:
    renderer: Renderer
    channel: Channel
    backlog: Backlog
    max_backlog: int = MAX_BACKLOG
    settle_s: float | None = SETTLE_S
    stats: FrameStats = field(default_factory=FrameStats)
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _inflight: dict[FrameRequest, asyncio.Future[Frame]] = field(default_factory=dict)
    _recent: OrderedDict[FrameRequest, Frame] = field(default_factory=OrderedDict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _outbox: dict[tuple[FrameRequest, int], _Group] = field(default_factory=dict)

    def request(self, sid: str, request: FrameRequest, viewport: dict[str, Any]) -> None:
        """Queue a frame for ``sid``; returns at once. A waiting older request is dropped.

        The frame is rendered at the interactive quality; unless another viewport follows within
        ``settle_s``, the final-quality frame of the same view follows it."""
        lane = self._lanes.setdefault(sid, _Lane())
        if request.quality != INTERACTIVE:
            request = replace(request, quality=INTERACTIVE)
        if self.settle_s is not None:
            loop = asyncio.get_running_loop()
            lane.moved_at = loop.time()
            lane.latest = (request, viewport)
            if lane.settle is None:
                # One timer per lane, pushed back when it fires early: a follower scrolled at
                # 30 frames a second costs a few timer wake-ups a second, not one per frame.
                lane.settle = loop.call_later(self.settle_s, self._settled, sid, lane)
        self._enqueue(sid, lane, request, viewport)

    def _settled(self, sid: str, lane: _Lane) -> None:
        lane.settle = None
        if self._lanes.get(sid) is not lane or lane.latest is None or self.settle_s is None:
            return
        loop = asyncio.get_running_loop()
        quiet = loop.time() - lane.moved_at
        if quiet < self.settle_s:
            lane.settle = loop.call_later(self.settle_s - quiet, self._settled, sid, lane)
            return
        (request, viewport), lane.latest = lane.latest, None
        self._enqueue(sid, lane, replace(request, quality=FINAL), viewport)

    def _enqueue(
        self, sid: str, lane: _Lane, request: FrameRequest, viewport: dict[str, Any]
    ) -> None:
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
            if lane.settle is not None:
                lane.settle.cancel()

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
        if request.quality == FINAL:
            self.stats.final_renders += 1
        future.set_result(frame)
        self._recent[request] = frame
        while len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return frame

    async def close(self) -> None:
        for lane in self._lanes.values():
            if lane.settle is not None:
                lane.settle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self, sid: str, lane: _Lane) -> None:
        try:
            while lane.pending is not None and self._lanes.get(sid) is lane:
                await lane.wait_for_credit()
                pending = lane.take()  # a newer request may have replaced it while we waited
                if pending is None:
                    break
                await self._render_and_send(sid, lane, *pending)
        except Exception:
            log.exception("frame lane failed", extra={"sid": sid})
        finally:
            lane.busy = False

    async def _render_and_send(
        self, sid: str, lane: _Lane, request: FrameRequest, viewport: dict[str, Any]
    ) -> None:
        try:
            frame = await self.render(request)
        except ApiError as exc:
            await self.channel.send_local(
                "frame.error", {"study_uid": request.study_uid, **exc.as_payload()}, sid=sid
            )
            return
        if not await self._room_to_send(sid, lane):
            return
        self.stats.sent += 1
        lane.sent += 1
        if (lane.sent - 1) % ACK_EVERY:
            self._post(sid, request, viewport, frame)
            return
        task = asyncio.get_running_loop().create_task(
            self._acknowledged(sid, lane, lane.sent, _meta(request, viewport, frame), frame)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _post(
        self, sid: str, request: FrameRequest, viewport: dict[str, Any], frame: Frame
    ) -> None:
        """Add ``sid`` to this loop turn's emit of the frame (the viewport is the same object for
        all followers of one presenter's update, and the group holds it, so its id is stable)."""
        if not self._outbox:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        group = self._outbox.get((request, id(viewport)))
        if group is None:
            group = _Group(_meta(request, viewport, frame), frame.data, [])
            self._outbox[(request, id(viewport))] = group
        group.sids.append(sid)

    async def _flush(self) -> None:
        await asyncio.sleep(GATHER_S)
        outbox, self._outbox = self._outbox, {}
        for group in outbox.values():
            self.stats.group_emits += 1
            try:
                await self.channel.send_local_many("frame", group.meta, group.data, sids=group.sids)
            except Exception:
                log.exception("frame emit failed", extra={"sids": len(group.sids)})

    async def _acknowledged(
        self, sid: str, lane: _Lane, number: int, meta: dict[str, Any], frame: Frame
    ) -> None:
        try:
            if not await self.channel.call_local(
                "frame", meta, frame.data, sid=sid, wait_s=ACK_TIMEOUT_S
            ):
                self.stats.unacknowledged += 1
        finally:
            # Unanswered, it is given up on like an answered one: the lane moves on, at the pace
            # of one acknowledgement timeout per window.
            lane.confirm(number)

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


def _meta(request: FrameRequest, viewport: dict[str, Any], frame: Frame) -> dict[str, Any]:
    return {
        "study_uid": request.study_uid,
        "instance_uid": request.instance_uid,
        "frame": request.frame,
        "key": request.key(),
        "content_type": frame.content_type,
        "width": frame.width,
        "height": frame.height,
        "quality": request.quality,
        "viewport": viewport,
    }


class NoRenderer:
    """Until a render service is wired, viewports get a clear error instead of silence."""

    async def render(self, request: FrameRequest) -> Frame:
        raise ApiError("service_unavailable", "No render service is connected to the rooms.")

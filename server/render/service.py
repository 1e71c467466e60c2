"""The render service: pipeline work off the event loop, shared and cached.

- Work runs in a thread pool sized to the cores; numpy, OpenCV and the JPEG decoders release
  the GIL, so threads render in parallel.
- Decoded frames and encoded results live in LRU caches bounded in bytes.
- Identical requests in flight at the same time are rendered once (single flight), so fifty
  followers of one presenter cost one render.
- Each viewer has at most one render in flight; a newer request replaces a queued one, whose
  caller gets `Superseded` (latest wins), so a fast scroll never builds a backlog.
- While a viewer scrolls a series, the neighbouring slices are decoded ahead.
"""

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from server.render.cache import ByteLru, SingleFlight
from server.render.compose import choose_voi, render_image, render_tile
from server.render.decode import DecodedFrame, decode_frame, decode_known, read_dataset
from server.render.encode import Encoding, ImageFormat, encode
from server.render.errors import NOT_FOUND, TOO_LARGE, RenderError
from server.render.header import ImageInfo, image_info
from server.render.measure import Point, Probe, Roi, RoiStats, probe, roi_stats
from server.render.modality_lut import ModalityLut
from server.render.models import (
    InstanceLoader,
    MprRequest,
    Quality,
    RenderedFrame,
    RenderRequest,
    Superseded,
    TileRequest,
    etag_for,
)
from server.render.mpr import Plane, Volume, build_volume, reslice, reslice_oblique
from server.render.tiles import tile_box
from server.render.viewport import Viewport, apply_viewport, output_size
from server.render.voi_lut import Voi, VoiFunction, Window, render_grey

T = TypeVar("T")


@dataclass(frozen=True)
class RenderSettings:
    """Sizes and qualities; the defaults suit a 2-4 core reading server."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 2)
    decoded_cache_bytes: int = 512 << 20
    encoded_cache_bytes: int = 128 << 20
    volume_cache_bytes: int = 1 << 30
    info_cache_bytes: int = 16 << 20
    interactive_jpeg_quality: int = 60
    final_jpeg_quality: int = 90
    interactive_max_side: int = 512
    prefetch_radius: int = 2


@dataclass
class _Lane:
    """One viewer's queue: the render in flight is implicit, at most one waits behind it."""

    busy: bool = False
    pending: tuple[RenderRequest, "asyncio.Future[RenderedFrame | Superseded]"] | None = None


class RenderService:
    def __init__(self, loader: InstanceLoader, settings: RenderSettings | None = None) -> None:
        self.settings = settings or RenderSettings()
        self._loader = loader
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.settings.workers), thread_name_prefix="render"
        )
        self.decoded = ByteLru[tuple[str, int], DecodedFrame](self.settings.decoded_cache_bytes)
        self.encoded = ByteLru[object, RenderedFrame](self.settings.encoded_cache_bytes)
        self.volumes = ByteLru[str, Volume](self.settings.volume_cache_bytes)
        self.infos = ByteLru[str, ImageInfo](self.settings.info_cache_bytes)
        self._decode_flight = SingleFlight[tuple[str, int], DecodedFrame]()
        self._render_flight = SingleFlight[object, RenderedFrame]()
        self._volume_flight = SingleFlight[str, Volume]()
        self._lanes: dict[str, _Lane] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._prefetch_gate = asyncio.Semaphore(1)
        self._prefetching: dict[str, asyncio.Task[None]] = {}
        self._series_lists = ByteLru[str, tuple[float, list[str]]](SERIES_LIST_BYTES)
        self.renders = 0
        self.decodes = 0

    async def wait_idle(self) -> None:
        """Until background work (viewer queues, prefetch) has finished."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for viewer in list(self._lanes):
            self.forget_viewer(viewer)
        for flight in (self._render_flight, self._decode_flight, self._volume_flight):
            await flight.cancel_all()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- frames ---------------------------------------------------------------------------

    async def render(self, request: RenderRequest) -> RenderedFrame:
        """Render one frame, from cache when possible, once for concurrent identical asks."""
        cached = self.encoded.get(request)
        if cached is not None:
            return cached
        return await self._render_flight.run(request, lambda: self._render_frame(request))

    def cached(self, request: RenderRequest) -> RenderedFrame | None:
        """The rendered frame if it is in the encoded cache, without scheduling anything."""
        return self.encoded.get(request)

    def known_info(self, sop_instance_uid: str) -> ImageInfo | None:
        """The instance's header facts if already read, without reading anything."""
        return self.infos.get(sop_instance_uid)

    async def render_for_viewer(
        self,
        viewer_id: str,
        request: RenderRequest,
        *,
        series_instance_uid: str | None = None,
    ) -> RenderedFrame | Superseded:
        """Render for one viewer, latest request wins. Once its frame is delivered, the
        neighbouring frames of a multi-frame instance, or with `series_instance_uid` the
        neighbouring instances, are decoded ahead (never competing with the visible frame)."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.setdefault(viewer_id, _Lane())
        future: asyncio.Future[RenderedFrame | Superseded] = loop.create_future()
        if lane.pending is not None:
            replaced, waiting = lane.pending
            if not waiting.done():
                waiting.set_result(Superseded(replaced))
        lane.pending = (request, future)
        if not lane.busy:
            lane.busy = True
            self._spawn(self._drain(viewer_id, lane))
        previous = self._prefetching.pop(viewer_id, None)
        if previous is not None:
            previous.cancel()
        result = await future
        if isinstance(result, RenderedFrame):
            task = self._spawn(self._prefetch(series_instance_uid, request))
            self._prefetching[viewer_id] = task
            task.add_done_callback(lambda done: self._forget_prefetch(viewer_id, done))
        return result

    def forget_viewer(self, viewer_id: str) -> None:
        """A viewer left: its queued request (if any) is answered `Superseded`."""
        lane = self._lanes.pop(viewer_id, None)
        if lane is not None and lane.pending is not None:
            request, waiting = lane.pending
            lane.pending = None
            if not waiting.done():
                waiting.set_result(Superseded(request))

    async def _drain(self, viewer_id: str, lane: _Lane) -> None:
        try:
            while lane.pending is not None:
                request, waiting = lane.pending
                lane.pending = None
                if waiting.done():
                    continue
                try:
                    result = await self.render(request)
                except asyncio.CancelledError:
                    waiting.cancel()
                    raise
                except Exception as exc:  # delivered to the waiting caller, who maps it
                    if not waiting.done():
                        waiting.set_exception(exc)
                else:
                    if not waiting.done():
                        waiting.set_result(result)
        finally:
            lane.busy = False
            if self._lanes.get(viewer_id) is lane and lane.pending is None:
                del self._lanes[viewer_id]

    async def _render_frame(self, request: RenderRequest) -> RenderedFrame:
        """Cold frames decode and render in one pool job (one thread hop, not two); a frame
        already being decoded (by prefetch or another request) is awaited instead."""
        key = (request.sop_instance_uid, request.frame)
        decoded = self.decoded.get(key)
        if decoded is None and not self._decode_flight.running(key):
            outcome: list[RenderedFrame | RenderError] = []

            async def cold() -> DecodedFrame:
                data = await self._bytes(request.sop_instance_uid)

                known = self.infos.get(request.sop_instance_uid)

                def decode_and_render() -> DecodedFrame:
                    fresh = _decode_sync(data, request.frame, known)
                    try:
                        outcome.append(self._render_sync(fresh, request))
                    except RenderError as exc:
                        outcome.append(exc)
                    return fresh

                fresh = await self._in_pool(decode_and_render)
                self._remember(key, fresh)
                return fresh

            await self._decode_flight.run(key, cold)
            if isinstance(outcome[0], RenderError):
                raise outcome[0]
            result = outcome[0]
        else:
            ready = decoded or await self.frame(*key)
            result = await self._in_pool(lambda: self._render_sync(ready, request))
        self.renders += 1
        self.encoded.put(request, result, len(result.data))
        return result

    def _render_sync(self, decoded: DecodedFrame, request: RenderRequest) -> RenderedFrame:
        voi = self._voi(decoded, request.window, request.preset)
        info = decoded.info
        natural = output_size(info.rows, info.columns, info.aspect, request.viewport)
        viewport = self._sized(request.viewport, request.quality, natural)
        image = render_image(decoded, voi, viewport)
        return self._encoded(
            image,
            request.quality,
            request.jpeg_quality,
            etag_for(request),
            voi,
            request.image_format,
        )

    # -- tiles and MPR ----------------------------------------------------------------------

    async def render_tile(self, request: TileRequest) -> RenderedFrame:
        cached = self.encoded.get(request)
        if cached is not None:
            return cached
        return await self._render_flight.run(request, lambda: self._tile(request))

    async def _tile(self, request: TileRequest) -> RenderedFrame:
        decoded = await self.frame(request.sop_instance_uid, request.frame)

        def work() -> RenderedFrame:
            info = decoded.info
            box = tile_box(info.rows, info.columns, request.level, request.x, request.y)
            voi = self._voi(decoded, request.window, request.preset)
            image = render_tile(decoded, voi, box, invert=request.invert)
            return self._encoded(image, request.quality, None, etag_for(request), voi)

        result = await self._in_pool(work)
        self.renders += 1
        self.encoded.put(request, result, len(result.data))
        return result

    async def render_mpr(self, request: MprRequest) -> RenderedFrame:
        """A reformatted plane; the series' volume is built once and cached (bytes-bounded)."""
        volume = await self.volume(request.series_instance_uid)
        key = (request, volume.sop_instance_uids)
        cached = self.encoded.get(key)
        if cached is not None:
            return cached

        def work() -> RenderedFrame:
            if request.plane is Plane.OBLIQUE:
                plane = reslice_oblique(
                    volume,
                    request.orientation or (),
                    offset_mm=request.offset_mm,
                    slab_mm=request.slab_mm,
                    mode=request.slab_mode,
                )
            else:
                plane = reslice(
                    volume,
                    request.plane,
                    request.index,
                    slab_mm=request.slab_mm,
                    mode=request.slab_mode,
                )
            window = request.window or _value_range_window(plane.values)
            grey = render_grey(
                plane.values,
                _IDENTITY,
                window,
                invert=request.viewport.invert,
                stored_range=None,
            )
            rows, columns = grey.shape
            natural = output_size(rows, columns, plane.pixel_spacing, request.viewport)
            viewport = self._sized(request.viewport, request.quality, natural)
            image = apply_viewport(grey, plane.pixel_spacing, viewport)
            digest = hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()
            return self._encoded(image, request.quality, None, f'"{digest}"', window)

        async def rendered() -> RenderedFrame:
            result = await self._in_pool(work)
            self.renders += 1
            self.encoded.put(key, result, len(result.data))
            return result

        return await self._render_flight.run(key, rendered)

    async def volume(self, series_instance_uid: str) -> Volume:
        cached = self.volumes.get(series_instance_uid)
        if cached is not None:
            return cached
        return await self._volume_flight.run(
            series_instance_uid, lambda: self._build_volume(series_instance_uid)
        )

    async def _build_volume(self, series_instance_uid: str) -> Volume:
        """Every frame of every instance: single-frame slices, or the frames of an enhanced
        multi-frame object, each with its own position and orientation."""
        uids = await self._series(series_instance_uid)
        limit = self.settings.volume_cache_bytes
        frames: list[DecodedFrame] = []
        for uid in uids:
            data = await self._bytes(uid)
            first = await self._in_pool(partial(_decode_sync, data, 0))
            if (len(frames) + first.info.frames) * first.pixels.nbytes > limit:
                raise RenderError(TOO_LARGE, f"the series exceeds the {limit}-byte volume limit")
            frames.append(first)
            for index in range(1, first.info.frames):
                known = partial(_decode_sync, data, index, first.info)
                frames.append(await self._in_pool(known))
        volume = await self._in_pool(lambda: build_volume(frames, max_bytes=limit))
        self.volumes.put(series_instance_uid, volume, volume.nbytes)
        return volume

    # -- pixels for measurements -------------------------------------------------------------

    async def frame(self, sop_instance_uid: str, frame: int) -> DecodedFrame:
        """The decoded frame (cached); measurements and renders share it."""
        key = (sop_instance_uid, frame)
        cached = self.decoded.get(key)
        if cached is not None:
            return cached
        return await self._decode_flight.run(key, lambda: self._decode(key))

    async def info(self, sop_instance_uid: str) -> ImageInfo:
        """Header facts of an instance, kept apart from pixels so they outlive evictions."""
        cached = self.infos.get(sop_instance_uid)
        if cached is not None:
            return cached
        return (await self.frame(sop_instance_uid, 0)).info

    async def roi_stats(self, sop_instance_uid: str, frame: int, roi: Roi) -> RoiStats:
        decoded = await self.frame(sop_instance_uid, frame)
        return await self._in_pool(lambda: roi_stats(decoded, roi))

    async def probe(self, sop_instance_uid: str, frame: int, point: Point) -> Probe:
        decoded = await self.frame(sop_instance_uid, frame)
        return probe(decoded, point)

    async def _decode(self, key: tuple[str, int]) -> DecodedFrame:
        data = await self._bytes(key[0])
        known = self.infos.get(key[0])
        decoded = await self._in_pool(lambda: _decode_sync(data, key[1], known))
        self._remember(key, decoded)
        return decoded

    def _remember(self, key: tuple[str, int], decoded: DecodedFrame) -> None:
        self.decodes += 1
        self.decoded.put(key, decoded, decoded.nbytes)
        self.infos.put(key[0], decoded.info, INFO_BYTES + _lut_bytes(decoded.info))

    async def _bytes(self, sop_instance_uid: str) -> bytes:
        try:
            return await self._loader.instance_bytes(sop_instance_uid)
        except KeyError:
            raise RenderError(NOT_FOUND, f"no instance {sop_instance_uid}") from None

    async def series_instance_uids(self, series_instance_uid: str) -> list[str]:
        """The loader's list, with unknown series as a `not_found` RenderError."""
        return await self._series(series_instance_uid)

    async def _series(self, series_instance_uid: str) -> list[str]:
        try:
            return await self._loader.series_instance_uids(series_instance_uid)
        except KeyError:
            raise RenderError(NOT_FOUND, f"no series {series_instance_uid}") from None

    async def _prefetch(self, series_instance_uid: str | None, request: RenderRequest) -> None:
        """Decode what the viewer will likely show next, nearest first, one at a time, skipping
        cached frames. A viewer's newer request cancels its older prefetch (decodes already
        started still finish, they are shared)."""
        radius = self.settings.prefetch_radius
        if radius <= 0:
            return
        info = self.infos.get(request.sop_instance_uid)
        if info is not None and info.frames > 1:
            nearby = _nearest(request.frame, info.frames, radius)
            keys = [(request.sop_instance_uid, i) for i in nearby]
        elif series_instance_uid is not None:
            uids = await self._series_list(series_instance_uid)
            if request.sop_instance_uid not in uids:
                return
            nearby = _nearest(uids.index(request.sop_instance_uid), len(uids), radius)
            keys = [(uids[i], 0) for i in nearby]
        else:
            return
        for key in keys:
            if key in self.decoded:
                continue
            async with self._prefetch_gate:
                try:
                    await self.frame(*key)
                except RenderError:
                    continue

    async def _series_list(self, series_instance_uid: str) -> list[str]:
        """The loader's list, reused for a few seconds rather than asked for every scroll step;
        an unknown series prefetches nothing."""
        now = time.monotonic()
        listed = self._series_lists.get(series_instance_uid)
        if listed is not None and now - listed[0] < SERIES_LIST_TTL_S:
            return listed[1]
        try:
            uids = await self._series(series_instance_uid)
        except RenderError:
            return []
        self._series_lists.put(series_instance_uid, (now, uids), 100 * len(uids) + 100)
        return uids

    # -- helpers ----------------------------------------------------------------------------

    def _voi(self, decoded: DecodedFrame, window: Window | None, preset: str | None) -> Voi | None:
        if decoded.info.is_color:
            return None
        return choose_voi(decoded.info, decoded.pixels, window=window, preset=preset)

    def _sized(self, viewport: Viewport, quality: Quality, natural: tuple[int, int]) -> Viewport:
        """Interactive frames are at most `interactive_max_side` wide or high; the client
        stretches them until the final frame arrives."""
        if quality is not Quality.INTERACTIVE:
            return viewport
        width, height = viewport.canvas or natural
        limit = self.settings.interactive_max_side
        if max(width, height) <= limit:
            return viewport
        shrink = limit / max(width, height)
        return replace(
            viewport, canvas=(max(1, round(width * shrink)), max(1, round(height * shrink)))
        )

    def _encoded(
        self,
        image: npt.NDArray[np.uint8],
        quality: Quality,
        jpeg_quality: int | None,
        etag: str,
        voi: Voi | None,
        image_format: ImageFormat | None = None,
    ) -> RenderedFrame:
        pixels = image
        lossy = image_format or ImageFormat.JPEG
        if quality is Quality.LOSSLESS:
            if image_format is ImageFormat.WEBP:
                encoding = Encoding(ImageFormat.WEBP, lossless=True)
            else:
                encoding = Encoding(ImageFormat.PNG)
        elif image_format is ImageFormat.PNG:
            encoding = Encoding(ImageFormat.PNG)
        elif jpeg_quality is not None:
            encoding = Encoding(lossy, jpeg_quality)
        elif quality is Quality.INTERACTIVE:
            encoding = Encoding(lossy, self.settings.interactive_jpeg_quality)
        else:
            encoding = Encoding(lossy, self.settings.final_jpeg_quality)
        return RenderedFrame(
            data=encode(pixels, encoding),
            media_type=encoding.format.media_type,
            width=int(pixels.shape[1]),
            height=int(pixels.shape[0]),
            etag=etag,
            window=voi if isinstance(voi, Window) else None,
            quality=quality,
        )

    async def _in_pool(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _forget_prefetch(self, viewer_id: str, task: "asyncio.Task[None]") -> None:
        if self._prefetching.get(viewer_id) is task:
            del self._prefetching[viewer_id]


_IDENTITY = ModalityLut()
SERIES_LIST_BYTES = 4 << 20
SERIES_LIST_TTL_S = 5.0
INFO_BYTES = 2048


def _nearest(at: int, count: int, radius: int) -> list[int]:
    """Indices within `radius` of `at` (excluding it), nearest first."""
    around = range(max(0, at - radius), min(count, at + radius + 1))
    return sorted((i for i in around if i != at), key=lambda i: abs(i - at))


def _lut_bytes(info: ImageInfo) -> int:
    tables = [lut.table for lut in info.voi_luts]
    if info.modality_lut.lut is not None:
        tables.append(info.modality_lut.lut.table)
    return sum(int(t.nbytes) for t in tables)


def _value_range_window(values: npt.NDArray[np.float32]) -> Window:
    low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2.0, max(high - low, 1.0), VoiFunction.LINEAR_EXACT, "auto")


def _decode_sync(data: bytes, frame: int, known: ImageInfo | None = None) -> DecodedFrame:
    """`known` is the instance's header as read before; a SOP Instance UID names immutable
    content, so re-reading it (a third of a cold 512² frame's cost) is skipped."""
    if known is not None:
        return decode_known(data, known, frame)
    ds = read_dataset(data)
    return decode_frame(ds, image_info(ds), frame)

"""HTTP delivery of rendered pixels: `/api/render/...` and PS3.18 rendered resources.

This module is the render capability's HTTP edge, kept out of `server/render/`, which imports no
aiohttp. Responses are never compressed on the fly (JPEG/PNG do not shrink and gzip made a
2 ms frame 50 ms in Orthanc) and carry a strong ETag, since a SOP Instance UID names immutable
content.
"""

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Protocol

from aiohttp import web

from server.appkeys import SETTINGS
from server.auth.guard import AUTH_SERVICE, client_address, require
from server.auth.roles import Permission
from server.auth.service import Principal
from server.config import Settings
from server.http.errors import ApiError
from server.render.cache import ByteLru
from server.render.encode import ImageFormat
from server.render.errors import (
    INVALID_TILE,
    INVALID_VIEWPORT,
    NOT_FOUND,
    TOO_LARGE,
    RenderError,
)
from server.render.header import ImageInfo
from server.render.models import (
    InstanceLoader,
    MprRequest,
    Quality,
    RenderedFrame,
    RenderRequest,
    TileRequest,
)
from server.render.mpr import Plane, SlabMode
from server.render.params import (
    negotiate_rendered,
    parse_dicomweb_viewport,
    parse_format,
    parse_frame,
    parse_frame_list,
    parse_jpeg_quality,
    parse_quality,
    parse_viewport,
    parse_window,
)
from server.render.presets import presets_for
from server.render.service import RenderService, RenderSettings
from server.render.tiles import level_count
from server.render.viewport import Viewport

RENDER_SERVICE = web.AppKey("render_service", RenderService)
CACHE_CONTROL = "private, max-age=86400"
THUMBNAIL = Viewport(canvas=(128, 128))
AUDIT_EVERY_S = 600.0
SCOPE_TTL_S = 60.0

routes = web.RouteTableDef()


class RenderArchive(InstanceLoader, Protocol):
    """The archive as these routes need it: the render service's loader plus a facility-scoped
    lookup (`server.dicom.archive.Archive` implements it structurally). Unknown or out of
    scope raises KeyError."""

    async def instance(self, sop_instance_uid: str, facility: str | None = None) -> object: ...

    async def series_instance_uids(
        self, series_instance_uid: str, facility: str | None = None
    ) -> list[str]: ...

    async def study_instance_uids(
        self, study_instance_uid: str, facility: str | None = None
    ) -> list[str]: ...


RENDER_ARCHIVE = web.AppKey[RenderArchive]("render_archive")
RENDER_SETTINGS = web.AppKey("render_settings", RenderSettings)


def setup_render_routes(
    app: web.Application, archive_from: Callable[[web.Application], RenderArchive]
) -> None:
    """Add the render service (as a cleanup context) and its routes.

    `archive_from` is called at start-up, after the contexts registered before this one, so
    the DICOM archive built by its own context is handed over here (e.g. `app[ARCHIVE]`).
    Before start-up, `app[RENDER_ARCHIVE]` replaces that archive (tests, benchmarks) and
    `app[RENDER_SETTINGS]` the cache sizes and qualities otherwise taken from the settings.
    """

    async def render_ctx(app: web.Application) -> AsyncIterator[None]:
        archive = app.get(RENDER_ARCHIVE) or archive_from(app)
        service = RenderService(archive, app.get(RENDER_SETTINGS) or _settings(app[SETTINGS]))
        app[RENDER_SERVICE] = service
        app[_ACCESS] = _AccessAudit()
        app[_SCOPE] = _FacilityScope(archive)
        app[_PARSED] = ByteLru[str, RenderRequest](PARSED_BYTES)
        yield
        await service.close()

    app.cleanup_ctx.append(render_ctx)
    app.add_routes(routes)


def _settings(settings: Settings) -> RenderSettings:
    """The operator's cache sizes (NOCTIS_RENDER_*_CACHE_BYTES) over the service's defaults."""
    return RenderSettings(
        decoded_cache_bytes=settings.render_decoded_cache_bytes,
        encoded_cache_bytes=settings.render_encoded_cache_bytes,
    )


class _AccessAudit:
    """Audit image access once per user and study per ten minutes, not once per frame:
    scrolling a 1000-slice series must not write 1000 audit entries."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._limit = limit

    def recent(self, principal: Principal, study: str) -> bool:
        """Whether this access was audited within the period (nothing to write now)."""
        last = self._seen.get((principal.user_id, study))
        return last is not None and time.monotonic() - last < AUDIT_EVERY_S

    async def record(self, request: web.Request, principal: Principal, study: str) -> None:
        if self.recent(principal, study):
            return
        key = (principal.user_id, study)
        now = time.monotonic()
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        await request.app[AUTH_SERVICE].audit.record(
            actor=principal.username,
            action="images.view",
            outcome="success",
            target=f"study:{study}",
            remote=client_address(request),
            facility=principal.facility,
        )


_ACCESS = web.AppKey("render_access_audit", _AccessAudit)


class _FacilityScope:
    """Whether a reader's facility may see an instance or series, remembered for a minute.

    Renders are cached and shared across facilities by UID, so the check happens here, before
    any cached pixels are served; remembering positive answers keeps a store lookup off the
    path of every scrolled frame.
    """

    def __init__(self, archive: RenderArchive, limit: int = 100_000) -> None:
        self._archive = archive
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._limit = limit

    def known(self, principal: Principal, *, instance: str = "", series: str = "") -> bool:
        """Whether the answer is yes without asking the archive (cross-facility role, or a
        positive answer remembered within the minute)."""
        if principal.can(Permission.CROSS_FACILITY):
            return True
        seen = self._seen.get((principal.facility, instance, series))
        return seen is not None and time.monotonic() - seen < SCOPE_TTL_S

    async def check(self, principal: Principal, *, instance: str = "", series: str = "") -> None:
        if self.known(principal, instance=instance, series=series):
            return
        key = (principal.facility, instance, series)
        now = time.monotonic()
        try:
            if instance:
                await self._archive.instance(instance, principal.facility)
            else:
                await self._archive.series_instance_uids(series, principal.facility)
        except KeyError:
            what = f"instance {instance}" if instance else f"series {series}"
            raise ApiError(NOT_FOUND, f"no {what}") from None
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    async def members(
        self, principal: Principal, *, series: str = "", study: str = ""
    ) -> list[str]:
        """The instances of a series or study that the reader's facility may see, in order."""
        facility = None if principal.can(Permission.CROSS_FACILITY) else principal.facility
        try:
            if series:
                return await self._archive.series_instance_uids(series, facility)
            return await self._archive.study_instance_uids(study, facility)
        except KeyError:
            what = f"series {series}" if series else f"study {study}"
            raise ApiError(NOT_FOUND, f"no {what}") from None


_SCOPE = web.AppKey("render_facility_scope", _FacilityScope)
_PARSED = web.AppKey("render_parsed_requests", ByteLru[str, RenderRequest])
PARSED_BYTES = 4 << 20
PARSED_ENTRY_BYTES = 1024


async def _viewer(
    request: web.Request, *, instance: str = "", series: str = ""
) -> tuple[Principal, RenderService]:
    """The reader, allowed to view images and to see this instance or series."""
    principal = await require(request, Permission.IMAGES_VIEW)
    if instance or series:
        await request.app[_SCOPE].check(principal, instance=instance, series=series)
    return principal, request.app[RENDER_SERVICE]


async def _render_checked(
    request: web.Request, principal: Principal, render: RenderRequest
) -> RenderedFrame:
    """Render while the facility check runs, so a first-sight frame waits for the slower of
    the two archive lookups rather than their sum; nothing is served unless the check passes
    (its refusal wins over any render error, so existence elsewhere does not leak)."""
    check, rendered = await asyncio.gather(
        request.app[_SCOPE].check(principal, instance=render.sop_instance_uid),
        request.app[RENDER_SERVICE].render(render),
        return_exceptions=True,
    )
    if isinstance(check, BaseException):
        raise check
    if isinstance(rendered, BaseException):
        raise rendered
    return rendered


def _api_error(exc: RenderError) -> ApiError:
    return ApiError(exc.code, exc.message)


def _image(request: web.Request, frame: RenderedFrame) -> web.StreamResponse:
    headers = _frame_headers(frame)
    if frame.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=frame.data, headers=headers)


_HEADERS: dict[str, dict[str, str]] = {}
HEADERS_KEPT = 4096


def _frame_headers(frame: RenderedFrame) -> dict[str, str]:
    """A frame's response headers, built once per ETag (the ETag names the bytes, so the
    headers never change); aiohttp copies them into each response."""
    headers = _HEADERS.get(frame.etag)
    if headers is None:
        headers = {
            "Content-Type": frame.media_type,
            "ETag": frame.etag,
            "Cache-Control": CACHE_CONTROL,
            "Vary": "Authorization",
        }
        if frame.window is not None:
            headers["X-Render-Window"] = f"{frame.window.center:g},{frame.window.width:g}"
        if len(_HEADERS) >= HEADERS_KEPT:
            _HEADERS.pop(next(iter(_HEADERS)))
        _HEADERS[frame.etag] = headers
    return headers


async def _info(service: RenderService, sop_instance_uid: str) -> ImageInfo:
    return await service.info(sop_instance_uid)


@routes.get("/api/render/instances/{sop}/frames/{frame}")
async def frame_image(request: web.Request) -> web.StreamResponse:
    principal, service = await _viewer(request)
    try:
        render = _frame_request(request)
        warm = _warm(request, principal, service, render)
        if warm is not None:
            return warm
        result = await _render_checked(request, principal, render)
        info = await _info(service, render.sop_instance_uid)
        await request.app[_ACCESS].record(request, principal, info.study_instance_uid)
        return _image(request, result)
    except RenderError as exc:
        raise _api_error(exc) from None


def _frame_request(request: web.Request) -> RenderRequest:
    """The parsed request, remembered by its raw target: a scrolled or shared frame is asked
    for by the same URL again and again, and parsing it is a tenth of a cached answer's cost.
    Only valid requests are remembered; a bad one is parsed (and refused) every time."""
    parsed = request.app[_PARSED]
    target = request.raw_path
    render = parsed.get(target)
    if render is None:
        query = request.query
        render = RenderRequest(
            sop_instance_uid=request.match_info["sop"],
            frame=parse_frame(request.match_info["frame"]),
            window=parse_window(query.get("window")),
            preset=query.get("preset") or None,
            viewport=parse_viewport(query),
            quality=parse_quality(query.get("quality")),
            jpeg_quality=parse_jpeg_quality(query.get("jpeg")),
            image_format=parse_format(query.get("format")),
        )
        parsed.put(target, render, PARSED_ENTRY_BYTES + 2 * len(target))
    return render


def _warm(
    request: web.Request, principal: Principal, service: RenderService, render: RenderRequest
) -> web.StreamResponse | None:
    """The cached answer when everything it depends on is already known in memory: facility
    scope, the rendered bytes, the header facts and a recent audit entry. Anything missing
    returns None and the full path runs, with the same checks in the same order of authority."""
    sop = render.sop_instance_uid
    if not request.app[_SCOPE].known(principal, instance=sop):
        return None
    frame = service.cached(render)
    info = service.known_info(sop)
    if frame is None or info is None:
        return None
    if not request.app[_ACCESS].recent(principal, info.study_instance_uid):
        return None
    return _image(request, frame)


@routes.get("/api/render/instances/{sop}/frames/{frame}/tiles/{level}/{x}/{y}")
async def tile_image(request: web.Request) -> web.StreamResponse:
    principal, service = await _viewer(request, instance=request.match_info["sop"])
    try:
        query = request.query
        try:
            level, x, y = (int(request.match_info[k]) for k in ("level", "x", "y"))
        except ValueError:
            raise RenderError(INVALID_TILE, "level, x and y must be integers") from None
        tile = TileRequest(
            sop_instance_uid=request.match_info["sop"],
            frame=parse_frame(request.match_info["frame"]),
            level=level,
            x=x,
            y=y,
            window=parse_window(query.get("window")),
            preset=query.get("preset") or None,
            invert=parse_viewport(query).invert,
            quality=parse_quality(query.get("quality")),
        )
        info = await _info(service, tile.sop_instance_uid)
        await request.app[_ACCESS].record(request, principal, info.study_instance_uid)
        return _image(request, await service.render_tile(tile))
    except RenderError as exc:
        raise _api_error(exc) from None


@routes.get("/api/render/series/{series}/mpr/{plane}/{index}")
async def mpr_image(request: web.Request) -> web.StreamResponse:
    principal, _ = await _viewer(request, series=request.match_info["series"])
    try:
        try:
            plane = Plane(request.match_info["plane"])
            index = int(request.match_info["index"])
        except ValueError:
            raise RenderError(
                INVALID_VIEWPORT, "plane must be axial/coronal/sagittal, index an integer"
            ) from None
        if plane is Plane.OBLIQUE:
            raise RenderError(INVALID_VIEWPORT, "oblique planes are at .../mpr/oblique")
        return await _mpr(request, principal, plane=plane, index=index)
    except RenderError as exc:
        raise _api_error(exc) from None


@routes.get("/api/render/series/{series}/mpr/oblique")
async def oblique_mpr_image(request: web.Request) -> web.StreamResponse:
    """`orientation=rx,ry,rz,cx,cy,cz` (row and column directions in patient LPS, as in
    Image Orientation (Patient)) and `offset` mm from the volume's centre along row x col."""
    principal, _ = await _viewer(request, series=request.match_info["series"])
    try:
        raw = request.query.get("orientation", "").split(",")
        try:
            orientation = tuple(float(v) for v in raw)
            offset = float(request.query.get("offset", "0"))
        except ValueError:
            raise RenderError(
                INVALID_VIEWPORT, "orientation must be six numbers and offset a number of mm"
            ) from None
        if len(orientation) != 6 or not all(math.isfinite(v) for v in (*orientation, offset)):
            raise RenderError(INVALID_VIEWPORT, "orientation must be six finite numbers")
        return await _mpr(
            request, principal, plane=Plane.OBLIQUE, orientation=orientation, offset_mm=offset
        )
    except RenderError as exc:
        raise _api_error(exc) from None


async def _mpr(
    request: web.Request,
    principal: Principal,
    *,
    plane: Plane,
    index: int = 0,
    orientation: tuple[float, ...] | None = None,
    offset_mm: float = 0.0,
) -> web.StreamResponse:
    service = request.app[RENDER_SERVICE]
    query = request.query
    try:
        mode = SlabMode(query.get("mode", "average"))
        slab = float(query.get("slab", "0"))
    except ValueError:
        raise RenderError(
            INVALID_VIEWPORT, "mode must be mip/minip/average, slab a number of mm"
        ) from None
    mpr = MprRequest(
        series_instance_uid=request.match_info["series"],
        plane=plane,
        index=index,
        window=parse_window(query.get("window")),
        slab_mm=slab,
        slab_mode=mode,
        viewport=parse_viewport(query),
        quality=parse_quality(query.get("quality")),
        orientation=orientation,
        offset_mm=offset_mm,
    )
    result = await service.render_mpr(mpr)
    volume = await service.volume(mpr.series_instance_uid)
    first = await _info(service, volume.sop_instance_uids[0])
    await request.app[_ACCESS].record(request, principal, first.study_instance_uid)
    return _image(request, result)


@routes.get("/api/render/instances/{sop}/info")
async def instance_info(request: web.Request) -> web.Response:
    """What a viewer needs before asking for pixels: size, frames, presets, calibration."""
    principal, service = await _viewer(request, instance=request.match_info["sop"])
    try:
        info = await _info(service, request.match_info["sop"])
    except RenderError as exc:
        raise _api_error(exc) from None
    await request.app[_ACCESS].record(request, principal, info.study_instance_uid)
    return web.json_response(
        {
            "sop_instance_uid": info.sop_instance_uid,
            "series_instance_uid": info.series_instance_uid,
            "study_instance_uid": info.study_instance_uid,
            "modality": info.modality,
            "rows": info.rows,
            "columns": info.columns,
            "frames": info.frames,
            "photometric": info.photometric,
            "pixel_spacing": info.pixel_spacing,
            "spacing_source": info.spacing_source,
            "units": info.modality_lut.units,
            "tile_levels": level_count(info.rows, info.columns),
            "presets": [
                {
                    "name": p.name,
                    "label": p.label,
                    "center": p.window.center if p.window else None,
                    "width": p.window.width if p.window else None,
                    "function": p.window.function.value if p.window else "LUT",
                }
                for p in presets_for(info)
            ],
        }
    )


# -- DICOMweb (PS3.18 rendered resources) -------------------------------------------------------

DICOMWEB_STUDY = "/dicom-web/studies/{study}"
DICOMWEB_SERIES = DICOMWEB_STUDY + "/series/{series}"
DICOMWEB_INSTANCE = DICOMWEB_SERIES + "/instances/{sop}"
MAX_RENDERED_FRAMES = 512


@routes.get(DICOMWEB_STUDY + "/rendered")
async def dicomweb_study_rendered(request: web.Request) -> web.StreamResponse:
    """Every frame of every instance of the study, as multipart/related."""
    principal, _ = await _viewer(request)
    members = await request.app[_SCOPE].members(principal, study=request.match_info["study"])
    return await _rendered(request, principal, members, several=True)


@routes.get(DICOMWEB_SERIES + "/rendered")
async def dicomweb_series_rendered(request: web.Request) -> web.StreamResponse:
    """Every frame of every instance of the series, as multipart/related."""
    principal, _ = await _viewer(request)
    members = await request.app[_SCOPE].members(principal, series=request.match_info["series"])
    return await _rendered(request, principal, members, several=True)


@routes.get(DICOMWEB_INSTANCE + "/rendered")
async def dicomweb_instance_rendered(request: web.Request) -> web.StreamResponse:
    """A single-frame instance is one image; a multi-frame one is multipart/related, or its
    first frame for a client that accepts only single images."""
    principal, _ = await _viewer(request, instance=request.match_info["sop"])
    return await _rendered(request, principal, [request.match_info["sop"]], several=False)


@routes.get(DICOMWEB_INSTANCE + "/frames/{frames}/rendered")
async def dicomweb_frame_rendered(request: web.Request) -> web.StreamResponse:
    """One frame is one image; a list of frames is multipart/related, in the order asked."""
    principal, _ = await _viewer(request, instance=request.match_info["sop"])
    try:
        frames = parse_frame_list(request.match_info["frames"], MAX_RENDERED_FRAMES)
    except RenderError as exc:
        raise _api_error(exc) from None
    sop = request.match_info["sop"]
    return await _rendered(request, principal, [sop], several=len(frames) > 1, frames=frames)


@routes.get(DICOMWEB_INSTANCE + "/thumbnail")
async def dicomweb_instance_thumbnail(request: web.Request) -> web.StreamResponse:
    principal, _ = await _viewer(request, instance=request.match_info["sop"])
    return await _thumbnail(request, principal, request.match_info["sop"], 0)


@routes.get(DICOMWEB_INSTANCE + "/frames/{frames}/thumbnail")
async def dicomweb_frame_thumbnail(request: web.Request) -> web.StreamResponse:
    """A thumbnail is one image: the first frame of the list."""
    principal, _ = await _viewer(request, instance=request.match_info["sop"])
    try:
        frames = parse_frame_list(request.match_info["frames"], MAX_RENDERED_FRAMES)
    except RenderError as exc:
        raise _api_error(exc) from None
    return await _thumbnail(request, principal, request.match_info["sop"], frames[0])


@routes.get(DICOMWEB_SERIES + "/thumbnail")
async def dicomweb_series_thumbnail(request: web.Request) -> web.StreamResponse:
    """The series' middle instance, as readers recognise a series by its middle slice."""
    principal, _ = await _viewer(request)
    members = await request.app[_SCOPE].members(principal, series=request.match_info["series"])
    return await _thumbnail(request, principal, members[len(members) // 2], 0)


async def _thumbnail(
    request: web.Request, principal: Principal, sop: str, frame: int
) -> web.StreamResponse:
    try:
        image_format, _ = negotiate_rendered(request.headers.get("Accept", ""), several=False)
        template = _template(request, image_format, THUMBNAIL)
        info = await _placed(request, sop)
        rendered = await request.app[RENDER_SERVICE].render(
            replace(template, sop_instance_uid=sop, frame=frame)
        )
        await request.app[_ACCESS].record(request, principal, info.study_instance_uid)
        return _image(request, rendered)
    except RenderError as exc:
        raise _api_error(exc) from None


async def _rendered(
    request: web.Request,
    principal: Principal,
    sops: list[str],
    *,
    several: bool,
    frames: list[int] | None = None,
) -> web.StreamResponse:
    """Render `frames` of the one instance in `sops`, or every frame of each instance, and
    answer one image or a multipart/related message as negotiated."""
    service = request.app[RENDER_SERVICE]
    accept = request.headers.get("Accept", "")
    try:
        if len(sops) > MAX_RENDERED_FRAMES:
            raise RenderError(
                TOO_LARGE,
                f"{len(sops)} instances exceed the {MAX_RENDERED_FRAMES} frames of one"
                " response; ask per series or instance",
            )
        infos = await asyncio.gather(*(_placed(request, sop) for sop in sops))
        if frames is None:
            targets = [(info.sop_instance_uid, f) for info in infos for f in range(info.frames)]
            several = several or len(targets) > 1
        else:
            targets = [(sops[0], f) for f in frames]
        if len(targets) > MAX_RENDERED_FRAMES:
            raise RenderError(
                TOO_LARGE,
                f"{len(targets)} frames exceed the {MAX_RENDERED_FRAMES} of one response; "
                "ask for instances or frame lists",
            )
        try:
            image_format, multipart = negotiate_rendered(accept, several=several)
        except RenderError:
            if not (frames is None and len(sops) == 1):
                raise
            image_format, multipart = negotiate_rendered(accept, several=False)
            targets = targets[:1]
        template = _template(request, image_format, Viewport())
        renders = [replace(template, sop_instance_uid=sop, frame=f) for sop, f in targets]
        results = await asyncio.gather(*(service.render(r) for r in renders))
        for study in {info.study_instance_uid for info in infos}:
            await request.app[_ACCESS].record(request, principal, study)
    except RenderError as exc:
        raise _api_error(exc) from None
    if multipart:
        return _multipart(request, results)
    return _image(request, results[0])


def _template(request: web.Request, image_format: ImageFormat, default: Viewport) -> RenderRequest:
    """The query's window, viewport and quality as a request for any instance and frame."""
    query = request.query
    lossless = image_format is ImageFormat.PNG
    return RenderRequest(
        sop_instance_uid="",
        window=parse_window(query.get("window")),
        viewport=parse_dicomweb_viewport(query.get("viewport"), default),
        quality=Quality.LOSSLESS if lossless else Quality.FINAL,
        jpeg_quality=None if lossless else parse_jpeg_quality(query.get("quality")),
        image_format=None if image_format is ImageFormat.JPEG or lossless else image_format,
    )


async def _placed(request: web.Request, sop: str) -> ImageInfo:
    """The instance's header facts, refusing one that is not in the study (and series) of
    the URL: a DICOMweb path names its parents, and they must be right."""
    info = await request.app[RENDER_SERVICE].info(sop)
    study = request.match_info["study"]
    series = request.match_info.get("series", info.series_instance_uid)
    if (info.study_instance_uid, info.series_instance_uid) != (study, series):
        raise RenderError(NOT_FOUND, "the instance is not in that study and series")
    return info


def _multipart(request: web.Request, frames: list[RenderedFrame]) -> web.StreamResponse:
    """PS3.18 multipart/related, one part per frame. The boundary derives from the parts'
    ETags, so the same frames give the same bytes and the combined ETag stays strong."""
    digest = hashlib.blake2b(digest_size=16)
    for frame in frames:
        digest.update(frame.etag.encode())
    boundary = f"noctis-{digest.hexdigest()}"
    etag = f'"{digest.hexdigest()}"'
    media = frames[0].media_type
    headers = {
        "Content-Type": f'multipart/related; type="{media}"; boundary={boundary}',
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Authorization, Accept",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    chunks = []
    for frame in frames:
        chunks.append(
            f"--{boundary}\r\nContent-Type: {frame.media_type}\r\n"
            f"Content-Length: {len(frame.data)}\r\n\r\n".encode()
        )
        chunks.append(frame.data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return web.Response(body=b"".join(chunks), headers=headers)

"""HTTP delivery of rendered pixels: the render service's set-up and the `/api/render/...`
routes (frames, tiles, MPR, instance facts); PS3.18 rendered resources are in
`dicomweb_rendered`, what both share in `render_edge`. This is the render capability's HTTP
edge, kept out of `server/render/`, which imports no aiohttp.
"""

import asyncio
import math
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from server.appkeys import SETTINGS
from server.auth.service import Principal
from server.config import Settings
from server.http.dicomweb_rendered import routes as dicomweb_routes
from server.http.render_edge import (
    ACCESS,
    SCOPE,
    AccessAudit,
    FacilityScope,
    RenderArchive,
    api_error,
    image_response,
    viewer,
)
from server.http.render_edge import RENDER_ARCHIVE as RENDER_ARCHIVE
from server.http.render_edge import RENDER_SERVICE as RENDER_SERVICE
from server.http.render_edge import RENDER_SETTINGS as RENDER_SETTINGS
from server.render.cache import ByteLru
from server.render.errors import (
    INVALID_TILE,
    INVALID_VIEWPORT,
    RenderError,
)
from server.render.header import ImageInfo
from server.render.models import (
    MprRequest,
    RenderedFrame,
    RenderRequest,
    TileRequest,
)
from server.render.mpr import Plane, SlabMode
from server.render.params import (
    parse_format,
    parse_frame,
    parse_jpeg_quality,
    parse_quality,
    parse_viewport,
    parse_window,
)
from server.render.presets import presets_for
from server.render.service import RenderService, RenderSettings
from server.render.tiles import level_count

routes = web.RouteTableDef()


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
        app[ACCESS] = AccessAudit()
        app[SCOPE] = FacilityScope(archive)
        app[_PARSED] = ByteLru[str, RenderRequest](PARSED_BYTES)
        yield
        await service.close()

    app.cleanup_ctx.append(render_ctx)
    app.add_routes(routes)
    app.add_routes(dicomweb_routes)


def _settings(settings: Settings) -> RenderSettings:
    """The operator's cache sizes (NOCTIS_RENDER_*_CACHE_BYTES) over the service's defaults."""
    return RenderSettings(
        decoded_cache_bytes=settings.render_decoded_cache_bytes,
        encoded_cache_bytes=settings.render_encoded_cache_bytes,
    )


_PARSED = web.AppKey("render_parsed_requests", ByteLru[str, RenderRequest])
PARSED_BYTES = 4 << 20
PARSED_ENTRY_BYTES = 1024


async def _render_checked(
    request: web.Request, principal: Principal, render: RenderRequest
) -> RenderedFrame:
    """Render while the facility check runs, so a first-sight frame waits for the slower of
    the two archive lookups rather than their sum; nothing is served unless the check passes
    (its refusal wins over any render error, so existence elsewhere does not leak)."""
    check, rendered = await asyncio.gather(
        request.app[SCOPE].check(principal, instance=render.sop_instance_uid),
        request.app[RENDER_SERVICE].render(render),
        return_exceptions=True,
    )
    if isinstance(check, BaseException):
        raise check
    if isinstance(rendered, BaseException):
        raise rendered
    return rendered


async def _info(service: RenderService, sop_instance_uid: str) -> ImageInfo:
    return await service.info(sop_instance_uid)


@routes.get("/api/render/instances/{sop}/frames/{frame}")
async def frame_image(request: web.Request) -> web.StreamResponse:
    principal, service = await viewer(request)
    try:
        render = _frame_request(request)
        warm = _warm(request, principal, service, render)
        if warm is not None:
            return warm
        result = await _render_checked(request, principal, render)
        info = await _info(service, render.sop_instance_uid)
        await request.app[ACCESS].record(request, principal, info.study_instance_uid)
        return image_response(request, result)
    except RenderError as exc:
        raise api_error(exc) from None


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
    if not request.app[SCOPE].known(principal, instance=sop):
        return None
    frame = service.cached(render)
    info = service.known_info(sop)
    if frame is None or info is None:
        return None
    if not request.app[ACCESS].recent(principal, info.study_instance_uid):
        return None
    return image_response(request, frame)


@routes.get("/api/render/instances/{sop}/frames/{frame}/tiles/{level}/{x}/{y}")
async def tile_image(request: web.Request) -> web.StreamResponse:
    principal, service = await viewer(request, instance=request.match_info["sop"])
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
        await request.app[ACCESS].record(request, principal, info.study_instance_uid)
        return image_response(request, await service.render_tile(tile))
    except RenderError as exc:
        raise api_error(exc) from None


@routes.get("/api/render/series/{series}/mpr/{plane}/{index}")
async def mpr_image(request: web.Request) -> web.StreamResponse:
    principal, _ = await viewer(request, series=request.match_info["series"])
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
        raise api_error(exc) from None


@routes.get("/api/render/series/{series}/mpr/oblique")
async def oblique_mpr_image(request: web.Request) -> web.StreamResponse:
    """`orientation=rx,ry,rz,cx,cy,cz` (row and column directions in patient LPS, as in
    Image Orientation (Patient)) and `offset` mm from the volume's centre along row x col."""
    principal, _ = await viewer(request, series=request.match_info["series"])
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
        raise api_error(exc) from None


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
    await request.app[ACCESS].record(request, principal, first.study_instance_uid)
    return image_response(request, result)


@routes.get("/api/render/instances/{sop}/info")
async def instance_info(request: web.Request) -> web.Response:
    """What a viewer needs before asking for pixels: size, frames, presets, calibration."""
    principal, service = await viewer(request, instance=request.match_info["sop"])
    try:
        info = await _info(service, request.match_info["sop"])
    except RenderError as exc:
        raise api_error(exc) from None
    await request.app[ACCESS].record(request, principal, info.study_instance_uid)
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

"""PS3.18 rendered resources (`/dicom-web/.../rendered` and `/thumbnail`) over the render
service: content negotiation, one image or multipart/related, the study/series/instance/frame
forms."""

import asyncio
import hashlib
from dataclasses import replace

from aiohttp import web

from server.auth.service import Principal
from server.http.render_edge import (
    ACCESS,
    CACHE_CONTROL,
    RENDER_SERVICE,
    SCOPE,
    api_error,
    image_response,
    viewer,
)
from server.render.encode import ImageFormat
from server.render.errors import NOT_FOUND, TOO_LARGE, RenderError
from server.render.header import ImageInfo
from server.render.models import Quality, RenderedFrame, RenderRequest
from server.render.params import (
    negotiate_rendered,
    parse_dicomweb_viewport,
    parse_frame_list,
    parse_jpeg_quality,
    parse_window,
)
from server.render.viewport import Viewport

THUMBNAIL = Viewport(canvas=(128, 128))

routes = web.RouteTableDef()


DICOMWEB_STUDY = "/dicom-web/studies/{study}"
DICOMWEB_SERIES = DICOMWEB_STUDY + "/series/{series}"
DICOMWEB_INSTANCE = DICOMWEB_SERIES + "/instances/{sop}"
MAX_RENDERED_FRAMES = 512


@routes.get(DICOMWEB_STUDY + "/rendered")
async def dicomweb_study_rendered(request: web.Request) -> web.StreamResponse:
    """Every frame of every instance of the study, as multipart/related."""
    principal, _ = await viewer(request)
    members = await request.app[SCOPE].members(principal, study=request.match_info["study"])
    return await _rendered(request, principal, members, several=True)


@routes.get(DICOMWEB_SERIES + "/rendered")
async def dicomweb_series_rendered(request: web.Request) -> web.StreamResponse:
    """Every frame of every instance of the series, as multipart/related."""
    principal, _ = await viewer(request)
    members = await request.app[SCOPE].members(principal, series=request.match_info["series"])
    return await _rendered(request, principal, members, several=True)


def _frame_list(request: web.Request) -> list[int]:
    """The ``{frames}`` of the path, or a 400 naming what is wrong with it."""
    try:
        return parse_frame_list(request.match_info["frames"], MAX_RENDERED_FRAMES)
    except RenderError as exc:
        raise api_error(exc) from None


@routes.get(DICOMWEB_INSTANCE + "/rendered")
async def dicomweb_instance_rendered(request: web.Request) -> web.StreamResponse:
    """A single-frame instance is one image; a multi-frame one is multipart/related, or its
    first frame for a client that accepts only single images."""
    principal, _ = await viewer(request, instance=request.match_info["sop"])
    return await _rendered(request, principal, [request.match_info["sop"]], several=False)


@routes.get(DICOMWEB_INSTANCE + "/frames/{frames}/rendered")
async def dicomweb_frame_rendered(request: web.Request) -> web.StreamResponse:
    """One frame is one image; a list of frames is multipart/related, in the order asked."""
    principal, _ = await viewer(request, instance=request.match_info["sop"])
    frames = _frame_list(request)
    sop = request.match_info["sop"]
    return await _rendered(request, principal, [sop], several=len(frames) > 1, frames=frames)


@routes.get(DICOMWEB_INSTANCE + "/thumbnail")
async def dicomweb_instance_thumbnail(request: web.Request) -> web.StreamResponse:
    principal, _ = await viewer(request, instance=request.match_info["sop"])
    return await _thumbnail(request, principal, request.match_info["sop"], 0)


@routes.get(DICOMWEB_INSTANCE + "/frames/{frames}/thumbnail")
async def dicomweb_frame_thumbnail(request: web.Request) -> web.StreamResponse:
    """A thumbnail is one image: the first frame of the list."""
    principal, _ = await viewer(request, instance=request.match_info["sop"])
    return await _thumbnail(request, principal, request.match_info["sop"], _frame_list(request)[0])


@routes.get(DICOMWEB_SERIES + "/thumbnail")
async def dicomweb_series_thumbnail(request: web.Request) -> web.StreamResponse:
    """The series' middle instance, as readers recognise a series by its middle slice."""
    principal, _ = await viewer(request)
    members = await request.app[SCOPE].members(principal, series=request.match_info["series"])
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
        await request.app[ACCESS].record(request, principal, info.study_instance_uid)
        return image_response(request, rendered)
    except RenderError as exc:
        raise api_error(exc) from None


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
            await request.app[ACCESS].record(request, principal, study)
    except RenderError as exc:
        raise api_error(exc) from None
    if multipart:
        return _multipart(request, results)
    return image_response(request, results[0])


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

"""What every render route shares: the render service's app keys, the reader's facility
scope and image-access audit (both remembered, so a scrolled frame touches no store), and the
image response with its caching headers.

Responses are never compressed on the fly (JPEG/PNG do not shrink and gzip made a 2 ms frame
50 ms in Orthanc) and carry a strong ETag, since a SOP Instance UID names immutable content.
"""

import time
from collections import OrderedDict
from typing import Protocol

from aiohttp import web

from server.auth.guard import AUTH_SERVICE, client_address, require
from server.auth.roles import Permission
from server.auth.service import Principal
from server.http.errors import ApiError
from server.render.errors import NOT_FOUND, RenderError
from server.render.models import InstanceLoader, RenderedFrame
from server.render.service import RenderService, RenderSettings

RENDER_SERVICE = web.AppKey("render_service", RenderService)
CACHE_CONTROL = "private, max-age=86400"
AUDIT_EVERY_S = 600.0
SCOPE_TTL_S = 60.0


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


class AccessAudit:
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


ACCESS = web.AppKey("render_access_audit", AccessAudit)


class FacilityScope:
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


SCOPE = web.AppKey("render_facility_scope", FacilityScope)


async def viewer(
    request: web.Request, *, instance: str = "", series: str = ""
) -> tuple[Principal, RenderService]:
    """The reader, allowed to view images and to see this instance or series."""
    principal = await require(request, Permission.IMAGES_VIEW)
    if instance or series:
        await request.app[SCOPE].check(principal, instance=instance, series=series)
    return principal, request.app[RENDER_SERVICE]


def api_error(exc: RenderError) -> ApiError:
    return ApiError(exc.code, exc.message)


def image_response(request: web.Request, frame: RenderedFrame) -> web.StreamResponse:
    headers = frame_headers(frame)
    if frame.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=frame.data, headers=headers)


_HEADERS: dict[str, dict[str, str]] = {}
HEADERS_KEPT = 4096


def frame_headers(frame: RenderedFrame) -> dict[str, str]:
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

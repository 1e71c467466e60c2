"""HTTP routes for reports, templates, macros and facility profiles: validate, authorize, call
``Reports``, answer. Access to a report is recorded in the audit log."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from server.auth.guard import AUTH_SERVICE, client_address, require
from server.auth.roles import Permission
from server.http.body import query_int, read_json
from server.http.errors import ApiError
from server.workflow import reports
from server.workflow.orders import zone_of
from server.workflow.service import WORKFLOW
from server.workflow.studies import public as public_study

routes = web.RouteTableDef()

MAX_LOGO_BYTES = 256 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@routes.post("/api/studies/{study_id}/report/sign")
async def sign(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    body = await read_json(request, "reports.sign") if request.body_exists else {}
    version = await request.app[WORKFLOW].reports.sign(
        request.match_info["study_id"], principal, body.get("text")
    )
    return web.json_response(reports.public(version), status=201)


@routes.post("/api/studies/{study_id}/report/addenda")
async def addendum(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    body = await read_json(request, "reports.addendum")
    version = await request.app[WORKFLOW].reports.addendum(
        request.match_info["study_id"], principal, body["text"]
    )
    return web.json_response(reports.public(version), status=201)


@routes.get("/api/studies/{study_id}/reports")
async def list_reports(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_READ)
    service = request.app[WORKFLOW].reports
    study = await service.readable_study(request.match_info["study_id"], principal)
    versions = await service.versions(study["_id"])
    await request.app[AUTH_SERVICE].audit.record(
        actor=principal.username,
        action="report.read",
        outcome="success",
        target=study["_id"],
        remote=client_address(request),
        facility=study["facility"],
    )
    return web.json_response({"reports": [reports.public(v) for v in versions]})


@routes.get("/api/studies/{study_id}/reports/{version}/pdf")
async def report_pdf(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_READ)
    try:
        number = int(request.match_info["version"])
    except ValueError:
        raise ApiError("bad_request", "version must be an integer") from None
    study_id = request.match_info["study_id"]
    data = await request.app[WORKFLOW].reports.pdf(study_id, number, principal)
    await request.app[AUTH_SERVICE].audit.record(
        actor=principal.username,
        action="report.pdf",
        outcome="success",
        target=study_id,
        remote=client_address(request),
        facility=principal.facility,
        details={"version": number},
    )
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="report-{study_id}-{number}.pdf"'},
    )


@routes.get("/api/reports")
async def my_reports(request: web.Request) -> web.Response:
    """The studies with final reports the caller may read, newest first."""
    principal = await require(request, Permission.REPORTS_READ)
    workflow = request.app[WORKFLOW]
    docs = await workflow.reports.readable_studies(
        principal,
        query_int(request, "offset", 0, 0, 10_000),
        query_int(request, "limit", 50, 1, 200),
    )
    now = workflow.studies.now()
    return web.json_response({"items": [public_study(doc, now) for doc in docs]})


@routes.get("/api/report-templates")
async def list_templates(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_WRITE)
    docs = await request.app[WORKFLOW].reports.list_templates(
        principal.facility, request.query.get("modality"), request.query.get("body_part")
    )
    return web.json_response({"templates": [_template(d) for d in docs]})


@routes.post("/api/report-templates")
async def create_template(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    body = await read_json(request, "templates.create")
    doc = await request.app[WORKFLOW].reports.add_template(body, principal)
    return web.json_response(_template(doc), status=201)


def _template(doc: dict[str, object]) -> dict[str, object]:
    return {k: doc.get(k) for k in ("name", "modality", "body_part", "sections")} | {
        "id": doc["_id"]
    }


@routes.get("/api/report-macros")
async def list_macros(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_WRITE)
    macros = await request.app[WORKFLOW].reports.macros_for(principal)
    return web.json_response({"macros": macros})


@routes.post("/api/report-macros")
async def create_macro(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_WRITE)
    body = await read_json(request, "macros.create")
    if body.get("shared") and not principal.can(Permission.USERS_MANAGE):
        raise ApiError("forbidden", "Only admins create shared macros.")
    doc = await request.app[WORKFLOW].reports.add_macro(body, principal)
    return web.json_response(
        {"name": doc["name"], "text": doc["text"], "shared": doc["owner"] == "*"}, status=201
    )


@routes.post("/api/report-macros/expand")
async def expand(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_WRITE)
    body = await read_json(request, "macros.expand")
    macros = await request.app[WORKFLOW].reports.macros_for(principal)
    return web.json_response({"text": reports.expand_macros(body["text"], macros)})


@routes.put("/api/facilities/{facility}/profile")
async def facility_profile(request: web.Request) -> web.Response:
    principal = await require(request, Permission.USERS_MANAGE)
    facility = request.match_info["facility"]
    if not principal.may_access_facility(facility):
        raise ApiError("forbidden", "You may only change your own facility.")
    body = await read_json(request, "facilities.profile")
    timezone = body.get("timezone")
    if timezone is not None and zone_of(timezone) is None:
        raise ApiError("validation_failed", f"Unknown time zone {timezone!r}.")
    logo: bytes | None = None
    if body.get("logo_png"):
        try:
            logo = base64.b64decode(body["logo_png"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("validation_failed", "logo_png must be base64.") from None
        if not logo.startswith(PNG_SIGNATURE) or len(logo) > MAX_LOGO_BYTES:
            raise ApiError("validation_failed", "logo_png must be a PNG of at most 256 KiB.")
        if not await asyncio.to_thread(_readable_png, logo):
            raise ApiError("validation_failed", "logo_png is not a readable PNG image.")
    profile = {"_id": facility, "name": body["name"], "logo_png": logo, "timezone": timezone}
    await request.app[WORKFLOW].reports.profiles.replace_one(
        {"_id": facility}, profile, upsert=True
    )
    await request.app[AUTH_SERVICE].audit.record(
        actor=principal.username,
        action="facility.profile",
        outcome="success",
        target=facility,
        remote=client_address(request),
        facility=facility,
        details={"name": body["name"], "timezone": timezone, "logo": logo is not None},
    )
    return web.json_response(
        {"facility": facility, "name": body["name"], "logo": logo is not None, "timezone": timezone}
    )


def _readable_png(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            return image.format == "PNG" and 0 < image.width <= 4096 and 0 < image.height <= 4096
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False

"""HTTP routes for AI engines, findings and alerts: validate, authorize, call, answer.

Findings come from machines with an engine key, not from users: a wrong or missing key, an
unknown study or a malformed body is answered with a clear error and nothing is stored.
"""

from __future__ import annotations

from aiohttp import web

from server.auth.guard import AUTH_SERVICE, client_address, require
from server.auth.roles import Permission
from server.http.body import query_int, read_json
from server.http.errors import ApiError
from server.store.database import Document
from server.workflow import ai, alerts
from server.workflow.service import WORKFLOW

routes = web.RouteTableDef()


@routes.post("/api/ai/engines")
async def register_engine(request: web.Request) -> web.Response:
    principal = await require(request, Permission.USERS_MANAGE)
    body = await read_json(request, "ai.engines.create")
    facility = body.get("facility", principal.facility)
    if not principal.may_access_facility(facility):
        raise ApiError("forbidden", "You may only register engines for your own facility.")
    key = await request.app[WORKFLOW].ai.register(
        body["name"], facility, body.get("ae_title"), principal
    )
    return web.json_response({"name": body["name"], "api_key": key}, status=201)


@routes.post("/api/ai/findings")
async def post_finding(request: web.Request) -> web.Response:
    service = request.app[WORKFLOW].ai
    try:
        engine = await service.engine_for(request.headers.get("X-API-Key"))
    except ApiError:
        await request.app[AUTH_SERVICE].audit.record(
            actor=None,
            action="ai.finding",
            outcome="denied",
            remote=client_address(request),
            details={"reason": "invalid_api_key"},
        )
        raise
    body = await read_json(request, "ai.findings.create")
    finding = await service.intake(engine, body)
    return web.json_response(ai.public(finding), status=201)


@routes.post("/api/ai/sr")
async def post_sr(request: web.Request) -> web.Response:
    """A DICOM SR from an engine: every finding in it is stored, or none is."""
    service = request.app[WORKFLOW].ai
    engine = await service.engine_for(request.headers.get("X-API-Key"))
    if request.content_type != "application/dicom":
        raise ApiError("unsupported_media_type", "Send the SR as application/dicom.")
    data = await request.read()
    if not data:
        raise ApiError("validation_failed", "The body is empty.")
    findings = await service.intake_sr(engine, data)
    return web.json_response({"findings": [ai.public(f) for f in findings]}, status=201)


@routes.get("/api/studies/{study_id}/findings")
async def list_findings(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_READ)
    workflow = request.app[WORKFLOW]
    study = await workflow.studies.visible(request.match_info["study_id"], principal)
    return web.json_response({"findings": await workflow.ai.for_study(study["_id"])})


@routes.post("/api/ai/findings/{finding_id}/feedback")
async def feedback(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_WRITE)
    body = await read_json(request, "ai.findings.feedback")
    result = await request.app[WORKFLOW].ai.give_feedback(
        request.match_info["finding_id"], principal, body["verdict"], body.get("note")
    )
    return web.json_response(result)


@routes.get("/api/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_READ)
    match: Document = {"facility": principal.facility}
    statuses = [s for s in (request.query.get("status") or "").split(",") if s]
    unknown = [s for s in statuses if s not in ("open", "acknowledged", "escalated", "resolved")]
    if unknown:
        raise ApiError("bad_request", f"Unknown alert status {unknown[0]!r}.")
    if statuses:
        match["status"] = {"$in": statuses}
    if request.query.get("study_id"):
        match["study_id"] = request.query["study_id"]
    cursor = (
        request.app[WORKFLOW]
        .alerts.collection.find(match)
        .sort([("raised_at", -1), ("_id", 1)])
        .skip(query_int(request, "offset", 0, 0, 1_000_000))
        .limit(query_int(request, "limit", 50, 1, 200))
    )
    return web.json_response({"items": [alerts.public(doc) async for doc in cursor]})


@routes.post("/api/alerts/{alert_id}/{action}")
async def alert_action(request: web.Request) -> web.Response:
    principal = await require(request, Permission.ALERTS_MANAGE)
    body = await read_json(request, "alerts.action") if request.body_exists else {}
    doc = await request.app[WORKFLOW].alerts.act(
        request.match_info["alert_id"], request.match_info["action"], principal, body.get("note")
    )
    return web.json_response(alerts.public(doc))

"""Admin HTTP API of the archive (peers, scheduled procedures) and the recent-uploads list."""

from __future__ import annotations

import time

from aiohttp import web

from server.appkeys import STORE
from server.auth.guard import AUTH_SERVICE, client_address, require
from server.auth.roles import Permission
from server.auth.service import Principal
from server.dicom import keys
from server.dicom.ingest import UPLOADS
from server.dicom.worklist import public
from server.http.body import query_int, read_json
from server.http.errors import ApiError

routes = web.RouteTableDef()


def _facility_for(principal: Principal, requested: str | None) -> str:
    """Admins act on their own facility unless they may act on any."""
    if requested is None or requested == principal.facility:
        return principal.facility
    if not principal.can(Permission.CROSS_FACILITY):
        raise ApiError("forbidden", "You may only manage your own facility.")
    return requested


def _scope(principal: Principal) -> str | None:
    return None if principal.can(Permission.CROSS_FACILITY) else principal.facility


@routes.get("/api/dicom/peers")
async def list_peers(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_ADMIN)
    peers = request.app[keys.PEERS]
    listed = await peers.all(_scope(principal))
    everyone = await peers.all()
    return web.json_response(
        {"peers": [p.public() for p in listed], "open_mode": peers.allow_open and not everyone}
    )


@routes.post("/api/dicom/peers")
async def add_peer(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_ADMIN)
    body = await read_json(request, "dicom.peers.create")
    if "port" in body and "host" not in body:
        raise ApiError("validation_failed", "A move destination (port) needs a host.")
    facility = _facility_for(principal, body.get("facility"))
    peer = await request.app[keys.PEERS].add(
        body["ae_title"],
        facility,
        body.get("host"),
        body.get("port"),
        body.get("description", ""),
        principal.username,
    )
    await request.app[AUTH_SERVICE].audit.record(
        actor=principal.username,
        action="dicom.peers.create",
        outcome="success",
        target=peer.ae_title,
        remote=client_address(request),
        facility=facility,
    )
    return web.json_response(peer.public(), status=201)


@routes.delete("/api/dicom/peers/{peer_id}")
async def remove_peer(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_ADMIN)
    peer_id = request.match_info["peer_id"]
    if not await request.app[keys.PEERS].remove(peer_id, _scope(principal)):
        raise ApiError("not_found", "No such DICOM peer.")
    await request.app[AUTH_SERVICE].audit.record(
        actor=principal.username,
        action="dicom.peers.delete",
        outcome="success",
        target=peer_id,
        remote=client_address(request),
        facility=principal.facility,
    )
    return web.json_response({"ok": True})


@routes.post("/api/dicom/scheduled-procedures")
async def create_step(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_ADMIN)
    body = await read_json(request, "dicom.scheduled_procedures.create")
    facility = _facility_for(principal, body.get("facility"))
    worklist = request.app[keys.WORKLIST]
    if body.get("id") and await worklist.get(body["id"], None) is not None:
        raise ApiError("conflict", "A scheduled procedure step with this id exists.")
    doc = await worklist.create(body, facility, principal.username)
    return web.json_response(public(doc), status=201)


@routes.get("/api/dicom/scheduled-procedures")
async def list_steps(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_ADMIN)
    status = request.query.get("status")
    if status is not None and status not in {
        "scheduled",
        "in_progress",
        "completed",
        "discontinued",
        "cancelled",
    }:
        raise ApiError("bad_request", "status must be a scheduled procedure step status")
    docs = await request.app[keys.WORKLIST].listing(
        _scope(principal),
        status,
        query_int(request, "limit", 100, 1, 1000),
        query_int(request, "offset", 0, 0, 1_000_000),
    )
    return web.json_response({"scheduled_procedures": [public(d) for d in docs]})


@routes.delete("/api/dicom/scheduled-procedures/{step_id}")
async def cancel_step(request: web.Request) -> web.Response:
    principal = await require(request, Permission.DICOM_ADMIN)
    worklist = request.app[keys.WORKLIST]
    step_id = request.match_info["step_id"]
    doc = await worklist.cancel(step_id, _scope(principal))
    if doc is None:
        existing = await worklist.get(step_id, _scope(principal))
        if existing is None:
            raise ApiError("not_found", "No such scheduled procedure step.")
        raise ApiError("conflict", f"The step is already {existing['status']}.")
    return web.json_response(public(doc))


@routes.get("/api/uploads")
async def list_uploads(request: web.Request) -> web.Response:
    principal = await require(request, Permission.UPLOADS_WATCH)
    query: dict[str, object] = {}
    scope = _scope(principal)
    if scope is not None:
        query["facility"] = scope
    since = time.time() - query_int(request, "hours", 24, 1, 24 * 90) * 3600
    query["started_at"] = {"$gte": since}
    cursor = (
        request.app[STORE][UPLOADS]
        .find(query, {"failures": 0})
        .sort("started_at", -1)
        .limit(query_int(request, "limit", 50, 1, 500))
    )
    uploads = []
    async for doc in cursor:
        doc["upload_id"] = doc.pop("_id")
        uploads.append(doc)
    return web.json_response({"uploads": uploads})

"""HTTP routes of the accounts API: validate, authorize, call the service, answer."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.auth.audit import AuditQuery
from server.auth.guard import AUTH_SERVICE, authenticate, client_address, require
from server.auth.roles import Permission, Role
from server.auth.users import DEFAULT_FACILITY
from server.http.body import query_int, read_json
from server.http.errors import ApiError

routes = web.RouteTableDef()


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, "auth.login")
    pair = await request.app[AUTH_SERVICE].login(
        body["username"], body["password"], client_address(request)
    )
    return web.json_response(pair.as_json())


@routes.post("/api/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    body = await read_json(request, "auth.refresh")
    pair = await request.app[AUTH_SERVICE].refresh(body["refresh_token"], client_address(request))
    return web.json_response(pair.as_json())


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await read_json(request, "auth.logout") if request.body_exists else {}
    service = request.app[AUTH_SERVICE]
    if "refresh_token" in body:
        session = await service.sessions.session_for(body["refresh_token"])
        if session is not None and session.id != principal.session_id:
            raise ApiError("forbidden", "That refresh token belongs to another session.")
    await service.logout(principal, client_address(request))
    return web.json_response({"ok": True})


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    user = await request.app[AUTH_SERVICE].users.by_id(principal.user_id)
    if user is None:
        raise ApiError("invalid_token", "This account no longer exists.")
    return web.json_response(user.public())


@routes.get("/api/users")
async def list_users(request: web.Request) -> web.Response:
    await require(request, Permission.USERS_MANAGE)
    users = await request.app[AUTH_SERVICE].users.all()
    return web.json_response({"users": [u.public() for u in users]})


@routes.post("/api/users")
async def create_user(request: web.Request) -> web.Response:
    principal = await require(request, Permission.USERS_MANAGE)
    body = await read_json(request, "users.create")
    service = request.app[AUTH_SERVICE]
    user = await service.users.create(
        body["username"],
        body["password"],
        Role(body["role"]),
        body.get("facility", DEFAULT_FACILITY),
        body.get("display_name"),
    )
    await service.audit.record(
        actor=principal.username,
        action="users.create",
        outcome="success",
        target=user.username,
        remote=client_address(request),
        facility=principal.facility,
        details={"role": user.role.value, "facility": user.facility},
    )
    return web.json_response(user.public(), status=201)


@routes.patch("/api/users/{username}")
async def update_user(request: web.Request) -> web.Response:
    principal = await require(request, Permission.USERS_MANAGE)
    body = await read_json(request, "users.update")
    username = request.match_info["username"]
    if username == principal.username and (body.get("disabled") or "role" in body):
        raise ApiError("forbidden", "You cannot disable yourself or change your own role.")
    service = request.app[AUTH_SERVICE]
    user = await service.update_user(username, body)
    await service.audit.record(
        actor=principal.username,
        action="users.update",
        outcome="success",
        target=username,
        remote=client_address(request),
        facility=principal.facility,
        details=body,
    )
    return web.json_response(user.public())


def _query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError("bad_request", f"{name} must be an ISO 8601 date-time") from None


@routes.get("/api/audit")
async def audit(request: web.Request) -> web.Response:
    await require(request, Permission.AUDIT_READ)
    outcome = request.query.get("outcome")
    if outcome not in (None, "success", "failure", "denied"):
        raise ApiError("bad_request", "outcome must be success, failure or denied")
    query = AuditQuery(
        actor=request.query.get("actor"),
        action=request.query.get("action"),
        target=request.query.get("target"),
        outcome=outcome,  # type: ignore[arg-type]
        since=_query_time(request, "since"),
        until=_query_time(request, "until"),
        limit=query_int(request, "limit", 100, 1, 1000),
        offset=query_int(request, "offset", 0, 0, 1_000_000),
    )
    entries = await request.app[AUTH_SERVICE].audit.find(query)
    return web.json_response({"entries": entries})

"""HTTP routes for orders, the worklist, status, assignment and claims: validate, authorize,
call the service, answer. Nothing here decides policy; ``status`` and ``studies`` do."""

from __future__ import annotations

from aiohttp import web

from server.auth.guard import authenticate, require
from server.auth.roles import Permission
from server.http.body import query_int, read_json
from server.http.errors import ApiError
from server.store.database import Document
from server.workflow import notifications, query, stats
from server.workflow.service import WORKFLOW
from server.workflow.status import Priority, Status
from server.workflow.studies import public

routes = web.RouteTableDef()


def _study_response(request: web.Request, doc: Document, status: int = 200) -> web.Response:
    now = request.app[WORKFLOW].studies.now()
    return web.json_response(public(doc, now), status=status)


@routes.post("/api/orders")
async def create_order(request: web.Request) -> web.Response:
    principal = await require(request, Permission.ORDERS_MANAGE)
    body = await read_json(request, "orders.create")
    doc = await request.app[WORKFLOW].orders.create(body, principal)
    return _study_response(request, doc, 201)


@routes.patch("/api/orders/{accession}")
async def update_order(request: web.Request) -> web.Response:
    principal = await require(request, Permission.ORDERS_MANAGE)
    body = await read_json(request, "orders.update")
    doc = await request.app[WORKFLOW].orders.update(
        request.match_info["accession"], body, principal
    )
    return _study_response(request, doc)


@routes.post("/api/orders/{accession}/cancel")
async def cancel_order(request: web.Request) -> web.Response:
    principal = await require(request, Permission.ORDERS_MANAGE)
    body = await read_json(request, "orders.cancel") if request.body_exists else {}
    doc = await request.app[WORKFLOW].orders.cancel(
        request.match_info["accession"], principal, body.get("reason")
    )
    return _study_response(request, doc)


@routes.get("/api/worklist")
async def worklist(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_READ)
    await request.app[WORKFLOW].intake.write_counts()
    parsed = query.parse(
        request.query,
        username=principal.username,
        own_facility=principal.facility,
        cross_facility=principal.can(Permission.CROSS_FACILITY),
    )
    studies = request.app[WORKFLOW].studies
    now = studies.now()
    match = parsed.mongo_filter(now)
    # One row more than the page says whether another page follows; an exact total costs a
    # scan of every match on the embedded store, so it is computed only when asked for.
    cursor = studies.collection.find(match).sort(query.SORT).skip(parsed.offset)
    rows = [public(doc, now) async for doc in cursor.limit(parsed.limit + 1)]
    body: dict[str, object] = {
        "items": rows[: parsed.limit],
        "has_more": len(rows) > parsed.limit,
        "limit": parsed.limit,
        "offset": parsed.offset,
    }
    if query.flag(request.query, "count"):
        body["total"] = await studies.collection.count_documents(match)
    return web.json_response(body)


@routes.get("/api/studies/{study_id}")
async def get_study(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_READ)
    await request.app[WORKFLOW].intake.write_counts()
    doc = await request.app[WORKFLOW].studies.visible(request.match_info["study_id"], principal)
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/status")
async def change_status(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_READ)
    body = await read_json(request, "studies.status")
    doc = await request.app[WORKFLOW].studies.set_status(
        request.match_info["study_id"], Status(body["status"]), principal, body.get("reason")
    )
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/report/preliminary")
async def preliminary(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    if request.body_exists:
        await read_json(request, "reports.preliminary")
    doc = await request.app[WORKFLOW].studies.set_status(
        request.match_info["study_id"], Status.PRELIMINARY, principal, "preliminary report"
    )
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/assign")
async def assign(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_ASSIGN)
    body = await read_json(request, "studies.assign")
    doc = await request.app[WORKFLOW].assignment.assign(
        request.match_info["study_id"], body["username"], principal
    )
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/priority")
async def set_priority(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_ASSIGN)
    body = await read_json(request, "studies.priority")
    studies = request.app[WORKFLOW].studies
    doc = await studies.visible(request.match_info["study_id"], principal)
    doc = await studies.set_priority(
        doc, Priority(body["priority"]), actor=principal.username, reason=body.get("reason")
    )
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/claim")
async def claim(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    doc = await request.app[WORKFLOW].studies.claim(request.match_info["study_id"], principal)
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/release")
async def release(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    doc = await request.app[WORKFLOW].studies.release(request.match_info["study_id"], principal)
    return _study_response(request, doc)


@routes.post("/api/studies/{study_id}/invite")
async def invite(request: web.Request) -> web.Response:
    principal = await require(request, Permission.REPORTS_SIGN)
    body = await read_json(request, "studies.invite")
    doc = await request.app[WORKFLOW].assignment.invite(
        request.match_info["study_id"], body["username"], principal
    )
    return _study_response(request, doc)


@routes.get("/api/notifications")
async def list_notifications(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    unread_only = query.flag(request.query, "unread")
    docs, unread = await request.app[WORKFLOW].notifications.list(
        principal.user_id,
        unread_only=unread_only,
        limit=query_int(request, "limit", 50, 1, 200),
        offset=query_int(request, "offset", 0, 0, 1_000_000),
    )
    return web.json_response({"items": [notifications.public(d) for d in docs], "unread": unread})


@routes.post("/api/notifications/read-all")
async def read_all_notifications(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    count = await request.app[WORKFLOW].notifications.mark_all_read(principal.user_id)
    return web.json_response({"marked": count})


@routes.post("/api/notifications/{notification_id}/read")
async def read_notification(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    doc = await request.app[WORKFLOW].notifications.mark_read(
        principal.user_id, request.match_info["notification_id"]
    )
    return web.json_response(notifications.public(doc))


@routes.get("/api/stats/{name}")
async def statistics(request: web.Request) -> web.Response:
    principal = await require(request, Permission.STATS_READ)
    name = request.match_info["name"]
    if name not in stats.NAMES:
        raise ApiError("not_found", f"No statistic {name!r}; known: {list(stats.NAMES)}.")
    workflow = request.app[WORKFLOW]
    now = workflow.studies.now()
    facility: str | None = request.query.get("facility") or principal.facility
    if facility != principal.facility and not principal.can(Permission.CROSS_FACILITY):
        raise ApiError("forbidden", "You may only see your own facility's statistics.")
    if facility == "*":
        facility = None
    since = query.parse_time(request.query, "since") or now - 30 * 86400
    until = query.parse_time(request.query, "until") or now + 1
    if until <= since:
        raise ApiError("bad_request", "until must be after since")
    body = await workflow.stats.compute(name, facility, since, until, now)
    return web.json_response({"name": name, "facility": facility, **body})


@routes.get("/api/assignment-rules")
async def list_rules(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_ASSIGN)
    rules = await request.app[WORKFLOW].auto_assign.list_rules(principal.facility)
    return web.json_response({"rules": [_rule(r) for r in rules]})


@routes.post("/api/assignment-rules")
async def create_rule(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_ASSIGN)
    body = await read_json(request, "assignment_rules.create")
    rule = await request.app[WORKFLOW].auto_assign.add_rule(body, principal)
    return web.json_response(_rule(rule), status=201)


@routes.delete("/api/assignment-rules/{rule_id}")
async def delete_rule(request: web.Request) -> web.Response:
    principal = await require(request, Permission.WORKLIST_ASSIGN)
    await request.app[WORKFLOW].auto_assign.delete_rule(
        request.match_info["rule_id"], principal.facility
    )
    return web.json_response({"ok": True})


def _rule(doc: Document) -> dict[str, object]:
    return {k: doc.get(k) for k in ("modality", "body_part", "readers")} | {"id": doc["_id"]}

"""Liveness and readiness: live means the process answers; ready means it can serve (store up)."""

from __future__ import annotations

from aiohttp import web

from server.appkeys import STORE

routes = web.RouteTableDef()


@routes.get("/health/live")
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    store_ok = await request.app[STORE].ping(timeout_s=1.0)
    body = {"status": "ok" if store_ok else "unavailable", "checks": {"store": store_ok}}
    return web.json_response(body, status=200 if store_ok else 503)

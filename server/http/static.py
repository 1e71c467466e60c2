"""Serves the built web client (``client/dist``): the page revalidated on every load, the
hashed assets cached for a year.

Vite names every asset after a hash of its content, so a changed file is a new URL and the old
one may be cached forever; ``index.html`` is the only entry point and must never be stale, or a
browser would keep asking for assets that a deploy removed.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from server.http.errors import ApiError

DIST = Path(__file__).resolve().parents[2] / "client" / "dist"
CLIENT_DIST = web.AppKey("client_dist", Path)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


async def index(request: web.Request) -> web.StreamResponse:
    page = request.app[CLIENT_DIST] / "index.html"
    if not page.is_file():
        raise ApiError(
            "service_unavailable",
            "The web client is not built; run `make run` or `scripts/build-client`.",
        )
    return web.FileResponse(
        page,
        headers={"Cache-Control": REVALIDATE, "Content-Type": "text/html; charset=utf-8"},
    )


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not _ASSET_NAME.fullmatch(name) or ".." in name:
        raise ApiError("not_found")
    path = request.app[CLIENT_DIST] / "assets" / name
    if not path.is_file():
        raise ApiError("not_found")
    return web.FileResponse(path, headers={"Cache-Control": IMMUTABLE})


def setup_static(app: web.Application, dist: Path = DIST) -> None:
    """Mounts ``/`` and ``/assets/*``; everything else stays with the API and Socket.IO."""
    app[CLIENT_DIST] = dist
    app.router.add_get("/", index)
    app.router.add_get("/index.html", index)
    app.router.add_get("/assets/{name}", asset)

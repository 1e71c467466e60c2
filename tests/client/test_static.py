"""Serving the built client: caching per file kind, the CSP, and a clear answer when unbuilt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.http.middleware import request_context, security_headers
from server.http.static import IMMUTABLE, setup_static

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def _client(
    aiohttp_client: ClientFactory, dist: Path
) -> TestClient[web.Request, web.Application]:
    app = web.Application(middlewares=[request_context, security_headers])
    setup_static(app, dist)
    return await aiohttp_client(app)


async def test_unbuilt_client_is_explained(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await _client(aiohttp_client, tmp_path / "missing")
    response = await client.get("/")
    assert response.status == 503
    body = await response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert "scripts/build-client" in body["error"]["message"]


async def test_page_revalidates_and_hashed_assets_are_immutable(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>Noctis</title>")
    (tmp_path / "assets" / "index-AbC123.js").write_text("export {};")
    (tmp_path / "secret.txt").write_text("not an asset")
    client = await _client(aiohttp_client, tmp_path)

    page = await client.get("/")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-cache"
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    script = await client.get("/assets/index-AbC123.js")
    assert script.status == 200
    assert script.headers["Cache-Control"] == IMMUTABLE
    assert "javascript" in script.headers["Content-Type"]

    for path in ("/assets/..%2Fsecret.txt", "/assets/.hidden", "/assets/missing-1.js"):
        response = await client.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"

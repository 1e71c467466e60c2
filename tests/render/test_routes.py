"""The render routes on the real app (embedded store, real auth) with an in-memory archive."""

from collections.abc import Awaitable, Callable
from dataclasses import replace

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import AppOptions, build_app
from server.auth.roles import Role
from server.config import Settings
from server.http.render_routes import RENDER_ARCHIVE, RENDER_SERVICE
from server.render.decode import decode_bytes
from tests.conftest import Noctis
from tests.render.archive import MemoryArchive
from tests.support.synthetic import ct_series

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def rendering(
    aiohttp_client: ClientFactory, settings: Settings
) -> tuple[Noctis, MemoryArchive, dict[str, str]]:
    archive = MemoryArchive(ct_series(6, rows=64, cols=64))
    archive.add("1.2.3.666", "1.2.3.665", b"\x00" * 128 + b"DICM" + b"\xff" * 64)
    app = build_app(settings, AppOptions(bootstrap_admin=False))
    app[RENDER_ARCHIVE] = archive
    noctis = Noctis(app=app, client=await aiohttp_client(app))
    token = await noctis.token_for("reader")
    return noctis, archive, {"Authorization": f"Bearer {token}"}


def first(archive: MemoryArchive) -> tuple[str, str, str]:
    """Study, series and SOP Instance UID of the first synthetic slice."""
    series, members = next(iter(archive.series.items()))
    study = decode_bytes(archive.files[members[0]]).info.study_instance_uid
    return study, series, members[0]


def decoded(body: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)


async def test_frame_endpoint_serves_cacheable_uncompressed_jpeg(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    _, _, sop = first(archive)
    url = f"/api/render/instances/{sop}/frames/1?window=40,400&canvas=128x96"
    response = await noctis.client.get(url, headers={**auth, "Accept-Encoding": "gzip, br"})
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert "Content-Encoding" not in response.headers
    assert response.headers["Cache-Control"] == "private, max-age=86400"
    assert response.headers["X-Render-Window"] == "40,400"
    assert decoded(await response.read()).shape == (96, 128)
    etag = response.headers["ETag"]
    again = await noctis.client.get(url, headers={**auth, "If-None-Match": etag})
    assert again.status == 304


async def test_a_warm_frame_is_answered_from_memory_without_the_archive(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    _, _, sop = first(archive)
    url = f"/api/render/instances/{sop}/frames/1?window=40,400&jpeg=85"
    cold = await noctis.client.get(url, headers=auth)
    assert cold.status == 200
    body, etag = await cold.read(), cold.headers["ETag"]
    reads, lookups = archive.reads[sop], archive.lookups[sop]
    assert (reads, lookups) == (1, 1)
    for _ in range(3):
        warm = await noctis.client.get(url, headers=auth)
        assert warm.status == 200
        assert (await warm.read(), warm.headers["ETag"]) == (body, etag)
        assert warm.headers["X-Render-Window"] == "40,400"
        assert warm.headers["Content-Type"] == "image/jpeg"
        assert warm.headers["X-Content-Type-Options"] == "nosniff"
    assert (archive.reads[sop], archive.lookups[sop]) == (reads, lookups)
    other = await noctis.client.get(url.replace("40,400", "50,400"), headers=auth)
    assert other.headers["ETag"] != etag
    bad = await noctis.client.get(url.replace("40,400", "40,-1"), headers=auth)
    assert bad.status == 400
    assert (await noctis.client.get(url.replace("40,400", "40,-1"), headers=auth)).status == 400


async def test_frame_endpoint_requires_a_token(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, _ = rendering
    _, _, sop = first(archive)
    response = await noctis.client.get(f"/api/render/instances/{sop}/frames/1")
    assert response.status == 401


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/frames/99", 400, "frame_out_of_range"),
        ("/frames/0", 400, "frame_out_of_range"),
        ("/frames/1?canvas=0x512", 400, "invalid_canvas"),
        ("/frames/1?canvas=100000x100000", 400, "invalid_canvas"),
        ("/frames/1?window=40,0", 400, "invalid_window"),
        ("/frames/1?window=40,-3", 400, "invalid_window"),
        ("/frames/1?window=nan,400", 400, "invalid_window"),
        ("/frames/1?window=40,inf", 400, "invalid_window"),
        ("/frames/1?zoom=nan", 400, "invalid_viewport"),
        ("/frames/1?rotate=45", 400, "invalid_viewport"),
        ("/frames/1?quality=best", 400, "invalid_quality"),
        ("/frames/1?preset=nope", 400, "invalid_window"),
        ("/frames/1/tiles/5/0/0", 400, "invalid_tile"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]], path: str, status: int, code: str
) -> None:
    noctis, archive, auth = rendering
    _, _, sop = first(archive)
    response = await noctis.client.get(f"/api/render/instances/{sop}{path}", headers=auth)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    good = await noctis.client.get(f"/api/render/instances/{sop}/frames/1", headers=auth)
    assert good.status == 200


async def test_unknown_and_corrupt_instances(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, _, auth = rendering
    missing = await noctis.client.get("/api/render/instances/1.2.404/frames/1", headers=auth)
    assert missing.status == 404
    corrupt = await noctis.client.get("/api/render/instances/1.2.3.666/frames/1", headers=auth)
    assert corrupt.status == 422
    assert (await corrupt.json())["error"]["code"] == "undecodable"


async def test_dicomweb_rendered_with_window_viewport_and_quality(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    study, series, sop = first(archive)
    base = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    response = await noctis.client.get(
        f"{base}/frames/1/rendered?window=40,400,linear&viewport=100,50&quality=70", headers=auth
    )
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert decoded(await response.read()).shape == (50, 100)
    png = await noctis.client.get(f"{base}/rendered", headers={**auth, "Accept": "image/png"})
    assert png.content_type == "image/png"
    assert decoded(await png.read())[32, 32] == 128
    thumbnail = await noctis.client.get(f"{base}/thumbnail", headers=auth)
    assert decoded(await thumbnail.read()).shape == (128, 128)
    series_thumbnail = await noctis.client.get(
        f"/dicom-web/studies/{study}/series/{series}/thumbnail", headers=auth
    )
    assert decoded(await series_thumbnail.read()).shape == (128, 128)
    unknown = await noctis.client.get(
        f"/dicom-web/studies/{study}/series/9.9/thumbnail", headers=auth
    )
    assert unknown.status == 404
    refused = await noctis.client.get(f"{base}/rendered", headers={**auth, "Accept": "text/html"})
    assert refused.status == 406
    elsewhere = f"/dicom-web/studies/1.2.3/series/{series}/instances/{sop}/rendered"
    assert (await noctis.client.get(elsewhere, headers=auth)).status == 404
    sigmoid = await noctis.client.get(f"{base}/rendered?window=40,400,sigmoid", headers=auth)
    assert sigmoid.status == 200
    bad = await noctis.client.get(f"{base}/rendered?quality=0", headers=auth)
    assert (await bad.json())["error"]["code"] == "invalid_quality"


async def test_tiles_mpr_and_info(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    _, series, sop = first(archive)
    tile = await noctis.client.get(
        f"/api/render/instances/{sop}/frames/1/tiles/0/0/0?quality=lossless", headers=auth
    )
    assert decoded(await tile.read()).shape == (64, 64)
    mpr = await noctis.client.get(
        f"/api/render/series/{series}/mpr/sagittal/20?slab=3&mode=mip&window=40,400", headers=auth
    )
    assert mpr.status == 200
    info = await (await noctis.client.get(f"/api/render/instances/{sop}/info", headers=auth)).json()
    assert (info["rows"], info["columns"], info["frames"], info["units"]) == (64, 64, 1, "HU")
    assert info["presets"][0]["name"] == "object-1"
    assert {"brain", "lung", "bone"} <= {p["name"] for p in info["presets"]}


async def test_oblique_mpr_over_http(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    _, series, _ = first(archive)
    base = f"/api/render/series/{series}/mpr"
    good = await noctis.client.get(
        f"{base}/oblique?orientation=1,0,0,0,0.7071068,-0.7071068&offset=0.5&slab=2&mode=mip",
        headers=auth,
    )
    assert good.status == 200, await good.text()
    assert good.content_type == "image/jpeg"
    for bad in (
        "oblique",
        "oblique?orientation=1,0,0,0,1",
        "oblique?orientation=1,0,0,1,0,0",
        "oblique?orientation=1,0,0,0,1,0&offset=nan",
        "oblique?orientation=1,0,0,0,1,0&offset=900",
        "oblique/0",
    ):
        response = await noctis.client.get(f"{base}/{bad}", headers=auth)
        assert response.status == 400, bad
        assert (await response.json())["error"]["code"] == "invalid_viewport", bad


async def test_readers_see_only_their_facilitys_images(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    study, series, sop = first(archive)
    elsewhere = {"Authorization": f"Bearer {await noctis.token_for('far', facility='north')}"}
    anywhere = {"Authorization": f"Bearer {await noctis.token_for('boss', Role.ADMIN, 'north')}"}
    paths = [
        f"/api/render/instances/{sop}/frames/1",
        f"/api/render/instances/{sop}/info",
        f"/api/render/instances/{sop}/frames/1/tiles/0/0/0",
        f"/api/render/series/{series}/mpr/axial/0",
        f"/api/render/series/{series}/mpr/oblique?orientation=1,0,0,0,1,0",
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered",
        f"/dicom-web/studies/{study}/series/{series}/thumbnail",
        f"/dicom-web/studies/{study}/series/{series}/rendered",
        f"/dicom-web/studies/{study}/rendered",
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1/rendered",
    ]
    for path in paths:
        assert (await noctis.client.get(path, headers=auth)).status == 200, path
        refused = await noctis.client.get(path, headers=elsewhere)
        assert refused.status == 404, path
        assert (await refused.json())["error"]["code"] == "not_found"
        assert (await noctis.client.get(path, headers=anywhere)).status == 200, path


async def test_cache_sizes_come_from_the_settings(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    """NOCTIS_RENDER_*_CACHE_BYTES reach the service: with no encoded cache, asking twice
    renders twice; with no decoded cache, each render reads the archive again."""
    archive = MemoryArchive(ct_series(2, rows=64, cols=64))
    configured = replace(settings, render_decoded_cache_bytes=0, render_encoded_cache_bytes=0)
    app = build_app(configured, AppOptions(bootstrap_admin=False))
    app[RENDER_ARCHIVE] = archive
    noctis = Noctis(app=app, client=await aiohttp_client(app))
    auth = {"Authorization": f"Bearer {await noctis.token_for('reader')}"}
    service = app[RENDER_SERVICE]
    assert (service.decoded.max_bytes, service.encoded.max_bytes) == (0, 0)
    _, _, sop = first(archive)
    for _ in range(2):
        response = await noctis.client.get(f"/api/render/instances/{sop}/frames/1", headers=auth)
        assert response.status == 200
    assert service.renders == 2
    assert archive.reads[sop] == 2

"""Rendering what the real DICOM archive stored (STOW-RS through dicomweb-client), with the
render routes as the composition root wires them."""

import asyncio
from collections.abc import Awaitable, Callable

import cv2
import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient
from dicomweb_client.api import DICOMwebClient

from server.app import AppOptions, build_app
from server.auth.roles import Role
from server.config import Settings
from tests.conftest import Noctis
from tests.support.sockets import server_url
from tests.support.synthetic import ct_series

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def test_renders_instances_stored_in_the_archive(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    app = build_app(settings, AppOptions(bootstrap_admin=False))
    noctis = Noctis(app=app, client=await aiohttp_client(app))
    uploader = await noctis.token_for("tech", Role.TECHNICIAN)
    reader = {"Authorization": f"Bearer {await noctis.token_for('reader')}"}
    datasets = ct_series(4, rows=64, cols=64)
    web_client = DICOMwebClient(
        url=f"{server_url(noctis.client)}/dicom-web",
        headers={"Authorization": f"Bearer {uploader}"},
    )
    await asyncio.to_thread(web_client.store_instances, datasets)
    sop = str(datasets[2].SOPInstanceUID)
    series = str(datasets[2].SeriesInstanceUID)

    png = await noctis.client.get(
        f"/api/render/instances/{sop}/frames/1?quality=lossless", headers=reader
    )
    assert png.status == 200, await png.text()
    image = cv2.imdecode(np.frombuffer(await png.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert image[32, 32] == 128
    coronal = await noctis.client.get(f"/api/render/series/{series}/mpr/coronal/32", headers=reader)
    assert coronal.status == 200
    missing = await noctis.client.get("/api/render/instances/1.2.3.4/frames/1", headers=reader)
    assert missing.status == 404

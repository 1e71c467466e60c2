"""Rendering what the real DICOM archive stored (STOW-RS through dicomweb-client), with the
render routes as the composition root wires them."""

import asyncio
from collections.abc import Awaitable, Callable

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from dicomweb_client.api import DICOMwebClient

from server.app import AppOptions, build_app
from server.appkeys import BLOBS, STORE
from server.auth.roles import Role
from server.config import Settings
from server.dicom.archive import ARCHIVE, LOCATION_OVERHEAD_BYTES, Archive, Locations
from server.dicom.index import INSTANCES
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


async def test_the_archive_remembers_where_instances_are(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    """A series listed once is read back by blob key alone; the facility still applies, and a
    blob that has gone is reported unknown and forgotten."""
    app = build_app(settings, AppOptions(bootstrap_admin=False))
    noctis = Noctis(app=app, client=await aiohttp_client(app))
    uploader = await noctis.token_for("tech", Role.TECHNICIAN)
    datasets = ct_series(3, rows=32, cols=32)
    web_client = DICOMwebClient(
        url=f"{server_url(noctis.client)}/dicom-web",
        headers={"Authorization": f"Bearer {uploader}"},
    )
    await asyncio.to_thread(web_client.store_instances, datasets)
    archive = app[ARCHIVE]
    series = str(datasets[0].SeriesInstanceUID)
    fresh = Archive(app[STORE], app[BLOBS])
    uids = await fresh.series_instance_uids(series)
    assert len(fresh.locations) == 3
    expected = {uid: await archive.instance_bytes(uid) for uid in uids}
    # The index documents are gone from the store, yet the remembered locations still read.
    await app[STORE][INSTANCES].delete_many({"series_uid": series})
    assert {uid: await fresh.instance_bytes(uid) for uid in uids} == expected
    with pytest.raises(KeyError):
        await fresh.instance_bytes(uids[0], facility="elsewhere")
    assert await fresh.instance_bytes(uids[0], facility="main") == expected[uids[0]]
    known = fresh.locations.get(uids[1])
    assert known is not None
    await app[BLOBS].delete(known.blob)
    with pytest.raises(KeyError):
        await fresh.instance_bytes(uids[1])
    assert fresh.locations.get(uids[1]) is None


def test_remembered_locations_are_bounded_in_bytes() -> None:
    size = LOCATION_OVERHEAD_BYTES + len("1.2.000") + len("b000000000") + len("main")
    locations = Locations(max_bytes=3 * size)
    for i in range(10):
        locations.remember({"_id": f"1.2.{i:03d}", "blob": f"b{i:09d}", "facility": "main"})
    assert locations.nbytes <= locations.max_bytes
    assert len(locations) == 3
    assert locations.get("1.2.009") == ("b000000009", "main", None)
    assert locations.get("1.2.000") is None
    locations.remember({"_id": "1.2.x", "blob": None, "facility": "main"})
    assert locations.get("1.2.x") is None

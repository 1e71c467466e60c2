"""The embedded store starts on a free port, answers, stops, and readiness follows it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from server.app import AppOptions, build_app
from server.appkeys import STORE
from server.config import Settings
from server.store.connect import URL_FILE, embedded_dir, open_store
from server.store.database import Store
from server.store.embedded import start_embedded_store
from tests.conftest import TEST_SECRET, NoctisFactory


async def test_start_ping_persist_stop(tmp_path: Path) -> None:
    embedded = await start_embedded_store(tmp_path)
    try:
        store = Store(embedded.url, "persist")
        await store["things"].insert_one({"_id": 1, "name": "kept"})
        assert await store.ping()
        await store.close()
    finally:
        embedded.stop()
    assert embedded.process.poll() is not None

    again = await start_embedded_store(tmp_path)
    try:
        store = Store(again.url, "persist")
        assert await store["things"].find_one({"_id": 1}) == {"_id": 1, "name": "kept"}
        await store.close()
    finally:
        again.stop()


async def test_open_store_shares_a_running_embedded_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET)
    async with open_store(settings) as first:
        assert (embedded_dir(settings) / URL_FILE).exists()
        async with open_store(settings) as second:
            assert second.url == first.url
        assert await first.ping()
    assert not (embedded_dir(settings) / URL_FILE).exists()


async def test_app_starts_and_stops_its_own_embedded_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET, dicom_enabled=False)
    app = build_app(settings, AppOptions(bootstrap_admin=False))
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        response = await client.get("/health/ready")
        assert response.status == 200
        url = app[STORE].url
    probe = Store(url, "admin")
    assert not await probe.ping(timeout_s=0.5)
    await probe.close()


async def test_ready_turns_503_when_the_store_is_gone(
    noctis_factory: NoctisFactory, settings: Settings, tmp_path: Path
) -> None:
    embedded = await start_embedded_store(tmp_path / "own")
    try:
        noctis = await noctis_factory(settings_override={"mongo_url": embedded.url})
        assert (await noctis.client.get("/health/ready")).status == 200
        embedded.stop()
        await asyncio.sleep(0.1)
        response = await noctis.client.get("/health/ready")
        assert response.status == 503
        body = await response.json()
        assert body["checks"]["store"] is False
        assert (await noctis.client.get("/health/live")).status == 200
    finally:
        embedded.stop()
    assert replace(settings).mongo_url

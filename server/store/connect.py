"""Reaching the store: the configured MongoDB, or the embedded one under the data dir.

When the server runs the embedded store it leaves its URL in the data dir, so the ``noctis user``
commands talk to that same running store instead of opening the database file a second time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from server.config import Settings
from server.store.database import Store
from server.store.embedded import EmbeddedStore, start_embedded_store

URL_FILE = "store.url"


def embedded_dir(settings: Settings) -> Path:
    return settings.data_dir / "db"


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    if settings.mongo_url:
        store = Store(settings.mongo_url, settings.mongo_db)
        try:
            yield store
        finally:
            await store.close()
        return
    directory = embedded_dir(settings)
    running = await _running_embedded_url(directory)
    if running:
        store = Store(running, settings.mongo_db)
        try:
            yield store
        finally:
            await store.close()
        return
    embedded = await start_embedded_store(directory)
    url_file = directory / URL_FILE
    url_file.write_text(f"{embedded.process.pid} {embedded.url}\n")
    store = Store(embedded.url, settings.mongo_db)
    try:
        yield store
    finally:
        await store.close()
        _stop(embedded, url_file)


def _stop(embedded: EmbeddedStore, url_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        url_file.unlink()
    embedded.stop()


async def _running_embedded_url(directory: Path) -> str | None:
    try:
        pid_text, url = (directory / URL_FILE).read_text().split()
        os.kill(int(pid_text), 0)
    except (OSError, ValueError):
        return None
    probe = Store(url, "admin")
    try:
        return url if await probe.ping(timeout_s=1.0) else None
    finally:
        await probe.close()

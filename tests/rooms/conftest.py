"""Room tests: a bare store on a fresh database for the cores tested without the app."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from server.app import INDEXES
from server.config import Settings
from server.store.database import Store, ensure_indexes
from tests.support.servers import embedded_store


@pytest.fixture(scope="session")
def store_url() -> Iterator[str]:
    """As the shared fixture, but what PyMongo's monitor leaks while the start-up pings a store
    that is not listening yet (a socket of the closed start-up loop) is swallowed here, instead
    of being reported against whichever test the garbage collector lands in."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        with embedded_store() as embedded:
            gc.collect()
            sys.unraisablehook = hook
            yield embedded.url
    finally:
        sys.unraisablehook = hook


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    db = Store(settings.mongo_url or "", settings.mongo_db)
    await ensure_indexes(db, INDEXES)
    try:
        yield db
    finally:
        await db.client.drop_database(settings.mongo_db)
        await db.close()

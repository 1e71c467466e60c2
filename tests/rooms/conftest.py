"""Room tests: a bare store on a fresh database for the cores tested without the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.app import INDEXES
from server.config import Settings
from server.store.database import Store, ensure_indexes


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    db = Store(settings.mongo_url or "", settings.mongo_db)
    await ensure_indexes(db, INDEXES)
    try:
        yield db
    finally:
        await db.client.drop_database(settings.mongo_db)
        await db.close()

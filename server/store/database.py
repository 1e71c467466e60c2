"""The MongoDB connection, shared by every capability, and idempotent index creation.

Each capability declares the indexes it queries by (``IndexSpec``); the composition root hands
them all to ``ensure_indexes`` at start-up, so a fresh database and an old one end up the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

Document = dict[str, Any]


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class Store:
    """Owns the client; hands out collections by name so callers never build their own client."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=5000,
            connectTimeoutMS=5000,
            tz_aware=True,
            appname="noctis",
        )
        self.db: AsyncDatabase[Document] = self.client[database]

    def __getitem__(self, name: str) -> AsyncCollection[Document]:
        return self.db[name]

    async def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self.client.admin.command("ping")
        except (PyMongoError, TimeoutError) as exc:
            log.warning("store ping failed: %s", exc or "timed out")
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


async def ensure_indexes(store: Store, specs: Iterable[IndexSpec]) -> None:
    for spec in specs:
        await store[spec.collection].create_index(
            list(spec.keys), unique=spec.unique, name=spec.name, **dict(spec.options)
        )

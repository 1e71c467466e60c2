"""Upload events of processes that are not a server (``noctis import``), carried by the store.

A ``noctis import`` run has its own in-process hub, which no Socket.IO room listens to. It
therefore also writes its events to ``dicom_relayed_events``; every server node tails that
collection and publishes what it finds on its own hub, so the ``uploads`` room, the stability
watcher and the workflow intake hear an import as they hear an association. Each event is
claimed by exactly one node (the rooms' Redis manager carries the emit to the other nodes'
clients), published in the order it was written, then removed. Events older than ``MAX_AGE_S``
are dropped unpublished: live status from an import that ran while no server did is stale.

Document shape: ``_id`` (str), ``seq`` (float: write time, then order within one writer),
``topic``, ``data``, ``facility``, ``claim`` (None until a node takes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid

from pymongo.errors import PyMongoError

from server.hub import DomainEvent, EventHub
from server.store.database import IndexSpec, Store

log = logging.getLogger(__name__)

RELAYED = "dicom_relayed_events"
INDEXES = [IndexSpec(RELAYED, [("claim", 1), ("seq", 1)])]
POLL_S = 0.5
MAX_AGE_S = 120.0
EXPIRE_EVERY_S = 30.0
BATCH = 500


class RelayWriter:
    """A hub subscriber that writes every event to the store for the servers to pick up."""

    def __init__(self, store: Store) -> None:
        self._collection = store[RELAYED]
        self._writer = uuid.uuid4().hex
        self._counter = itertools.count()

    async def __call__(self, event: DomainEvent) -> None:
        await self._collection.insert_one(
            {
                "_id": f"{self._writer}-{next(self._counter)}",
                "seq": time.time(),
                "topic": event.topic,
                "data": dict(event.data),
                "facility": event.facility,
                "claim": None,
            }
        )


class RelayTail:
    """Publishes relayed events on this node's hub; one per server node."""

    def __init__(self, store: Store, hub: EventHub, poll_s: float = POLL_S) -> None:
        self._collection = store[RELAYED]
        self._hub = hub
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._expired_at = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dicom-relay")

    async def stop(self) -> None:
        # The flag as well as the cancel: PyMongo may turn a cancellation during server selection
        # into an error this loop would otherwise log and retry.
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while await self.poll():
                    pass
            except PyMongoError as exc:
                if not self._stopping.is_set():
                    log.warning("reading relayed upload events failed: %s", str(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_s)

    async def poll(self) -> int:
        """Claim, publish and remove one batch; return how many events were published."""
        if time.monotonic() - self._expired_at >= EXPIRE_EVERY_S:
            self._expired_at = time.monotonic()
            await self._collection.delete_many({"seq": {"$lt": time.time() - MAX_AGE_S}})
        waiting = [
            doc["_id"]
            async for doc in self._collection.find({"claim": None}, {"_id": 1})
            .sort("seq", 1)
            .limit(BATCH)
        ]
        if not waiting:
            return 0
        claim = uuid.uuid4().hex
        await self._collection.update_many(
            {"_id": {"$in": waiting}, "claim": None}, {"$set": {"claim": claim}}
        )
        docs = [doc async for doc in self._collection.find({"claim": claim}).sort("seq", 1)]
        docs.sort(key=_order)
        for doc in docs:
            await self._hub.publish(
                DomainEvent(str(doc["topic"]), dict(doc["data"]), doc.get("facility"))
            )
        await self._collection.delete_many({"claim": claim})
        return len(docs)


def _order(doc: dict[str, object]) -> tuple[str, int]:
    """Within one writer, the counter in the id is the order it published in."""
    writer, _, number = str(doc["_id"]).rpartition("-")
    return writer, int(number) if number.isdigit() else 0

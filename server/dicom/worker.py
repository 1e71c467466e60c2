"""A gateway worker process: more cores for DIMSE, the same ingest path.

pynetdicom decodes PDUs in Python threads, so one process tops out at one core (the GIL). With
``NOCTIS_DICOM_WORKERS=N`` the server starts N of these processes; each listens on the gateway
port too (SO_REUSEPORT, the kernel spreads associations over all listeners) and runs the very
same ``Gateway``/``Ingest``/``IndexWriter`` code against the same store and blob store. Its hub
events go to the server process as JSON lines on stdout, where they are published on the real
hub (rooms, stability). The worker reads its configuration as one JSON line on stdin and exits
when stdin closes, so it never outlives the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from server.dicom.archive import Archive
from server.dicom.gateway import GIL_SWITCH_INTERVAL_S, Gateway, GatewayServices
from server.dicom.index import IndexWriter
from server.dicom.ingest import Ingest
from server.dicom.mpps import Mpps
from server.dicom.peers import Peers
from server.dicom.worklist import Worklist
from server.hub import ALL_TOPICS, DomainEvent, EventHub
from server.store.blobs import BlobStore, GridFSBlobStore, LocalBlobStore
from server.store.database import Store

log = logging.getLogger(__name__)
READY = "ready"


def config_line(
    *,
    mongo_url: str,
    mongo_db: str,
    blob_backend: str,
    blob_root: Path,
    ae_title: str,
    host: str,
    port: int,
    allow_open: bool,
) -> bytes:
    return (
        json.dumps(
            {
                "mongo_url": mongo_url,
                "mongo_db": mongo_db,
                "blob_backend": blob_backend,
                "blob_root": str(blob_root),
                "ae_title": ae_title,
                "host": host,
                "port": port,
                "allow_open": allow_open,
            }
        ).encode()
        + b"\n"
    )


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve(config: dict[str, Any]) -> None:
    store = Store(config["mongo_url"], config["mongo_db"])
    blobs: BlobStore = (
        GridFSBlobStore(store)
        if config["blob_backend"] == "gridfs"
        else LocalBlobStore(Path(config["blob_root"]))
    )
    hub = EventHub()

    async def forward(event: DomainEvent) -> None:
        _emit({"topic": event.topic, "data": dict(event.data), "facility": event.facility})

    hub.subscribe(ALL_TOPICS, forward)
    ingest = Ingest(store, IndexWriter(store, blobs), hub)
    ingest.start()
    worklist = Worklist(store)
    services = GatewayServices(
        store,
        ingest,
        Archive(store, blobs),
        Peers(store, allow_open=bool(config["allow_open"])),
        worklist,
        Mpps(store, hub, worklist),
    )
    loop = asyncio.get_running_loop()
    gateway = Gateway(services, loop, config["ae_title"], config["host"], int(config["port"]))
    await asyncio.to_thread(gateway.start)
    _emit({READY: True})
    try:
        await asyncio.to_thread(sys.stdin.read)
    finally:
        await asyncio.to_thread(gateway.stop)
        await ingest.stop()
        await hub.drain()
        await store.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    config = json.loads(sys.stdin.readline())
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()

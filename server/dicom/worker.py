"""A gateway worker process: more cores for C-STORE, the same ingest path.

One server process receiving, vetting, writing and indexing 512 KiB images tops out at one core
(the GIL). With ``NOCTIS_DICOM_WORKERS=N`` the server starts N of these; the server process
still accepts every association and hands each storage-only one, socket and all, to the least
busy worker (``workers.py``), which serves it on the lean path (``lean.py``) with the very same
``Ingest``/``IndexWriter`` code against the same store and blob store. Its hub events go to the
server process as JSON lines on stdout, where they are published on the real hub (rooms,
stability). The worker reads its configuration as one JSON line on stdin and exits when stdin
closes, so it never outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from server.dicom.gateway import GIL_SWITCH_INTERVAL_S, build_ae
from server.dicom.index import IndexWriter
from server.dicom.ingest import Ingest
from server.dicom.lean import LeanStorage, peek_request, storage_request
from server.dicom.peers import Peers
from server.dicom.workers import FINISHED
from server.eventloop import new_event_loop
from server.hub import ALL_TOPICS, DomainEvent, EventHub
from server.runtime import tune_garbage_collector
from server.store.blobs import BlobStore, GridFSBlobStore, LocalBlobStore
from server.store.database import Store

log = logging.getLogger(__name__)
READY = "ready"
# Sockets taken per wake-up of the channel; each message carries one.
MAX_FDS = 16


def config_line(
    *,
    mongo_url: str,
    mongo_db: str,
    blob_backend: str,
    blob_root: Path,
    ae_title: str,
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
                "allow_open": allow_open,
            }
        ).encode()
        + b"\n"
    )


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class _Receiver:
    """Takes the sockets the server process hands over and serves them on the lean path."""

    def __init__(self, channel: socket.socket, lean: LeanStorage) -> None:
        self._channel = channel
        self._lean = lean
        self.closed = asyncio.Event()

    def readable(self) -> None:
        try:
            data, fds, _flags, _address = socket.recv_fds(self._channel, MAX_FDS, MAX_FDS)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data and not fds:
            self.closed.set()
            return
        for fd in fds:
            asyncio.get_running_loop().create_task(self._take(socket.socket(fileno=fd)))

    async def _take(self, connection: socket.socket) -> None:
        """The server process peeked the whole request already, so this peek returns at once."""
        raw = await asyncio.to_thread(peek_request, connection)
        request = storage_request(raw) if raw is not None else None
        if raw is None or request is None:
            log.warning("a handed-over association was not a storage request")
            connection.close()
            finished(self._channel)
            return
        self._lean.take(connection, request, raw)


def finished(channel: socket.socket) -> None:
    with contextlib.suppress(OSError):
        channel.send(FINISHED)


async def serve(config: dict[str, Any], channel: socket.socket) -> None:
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
    loop = asyncio.get_running_loop()
    ae = build_ae(config["ae_title"])
    lean = LeanStorage(
        ae,
        ingest,
        Peers(store, allow_open=bool(config["allow_open"])),
        loop,
        ae.maximum_associations,
        on_finished=lambda: finished(channel),
    )
    channel.setblocking(False)
    receiver = _Receiver(channel, lean)
    loop.add_reader(channel.fileno(), receiver.readable)
    _emit({READY: True})
    ended = [
        loop.create_task(asyncio.to_thread(sys.stdin.read)),
        loop.create_task(receiver.closed.wait()),
    ]
    try:
        await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended[1].cancel()
        loop.remove_reader(channel.fileno())
        await lean.stop()
        await ingest.stop()
        await hub.drain()
        await store.close()
        channel.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    tune_garbage_collector()
    channel = socket.socket(fileno=int(sys.argv[1]))
    config = json.loads(sys.stdin.readline())
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(config, channel))
    finally:
        loop.close()


if __name__ == "__main__":
    main()

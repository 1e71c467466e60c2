"""Factories that start real servers on free loopback ports for tests, and stop them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from server.store.embedded import EmbeddedStore, free_port, start_embedded_store
from tests.support.programs import require_program


@contextlib.contextmanager
def embedded_store(directory: Path | None = None) -> Iterator[EmbeddedStore]:
    with tempfile.TemporaryDirectory(prefix="noctis-store-") as tmp:
        store = asyncio.run(start_embedded_store(directory or Path(tmp)))
        # PyMongo's probe clients can leave sockets for the garbage collector; collect them
        # now, so their ResourceWarning does not surface inside whichever test runs a GC.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        try:
            yield store
        finally:
            store.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = require_program("redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="noctis-redis-") as tmp:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    import socket

                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)

"""Runs the embedded MongoDB-protocol server (nx-27017) as a child process.

A small site needs no MongoDB install: when no URL is configured, Noctis starts nx-27017 on a free
loopback port with its files under the data dir, and stops it on shutdown. Code never knows the
difference; it speaks MongoDB through PyMongo either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

# nx-27017 logs every command at INFO; that costs more than the command itself, so the child
# runs with INFO disabled.
# It also watches its parent: if the server dies without stopping it (SIGKILL, OOM), the store
# shuts itself down cleanly instead of lingering with the database open.
_LAUNCHER = """
import logging, os, signal, sys, threading, time
logging.disable(logging.INFO)
parent = os.getppid()
def watch_parent():
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch_parent, daemon=True).start()
from nx_27017.nx_27017 import main
sys.argv[0] = "nx-27017"
main()
"""


class EmbeddedStoreError(RuntimeError):
    """The embedded store could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedStore:
    """A running nx-27017 child; ``url`` is what PyMongo connects to."""

    process: subprocess.Popen[bytes]
    url: str
    directory: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def _spawn(directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "nx-27017.log"
    args = [
        sys.executable,
        "-c",
        _LAUNCHER,
        "--data-dir",
        str(directory),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-file",
        str(log_path),
        "--pid-file",
        str(directory / "nx-27017.pid"),
    ]
    # The child gets its own process group so a Ctrl-C in the terminal reaches the server first,
    # which then stops the store in order instead of both dying at once mid-write.
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _port_open(port: int) -> bool:
    """Probe the port before PyMongo does: its monitor leaks a socket on a refused connect."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def _ping(url: str) -> bool:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=300, connectTimeoutMS=300
    )
    try:
        await client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await client.close()


async def start_embedded_store(directory: Path, startup_s: float = 30.0) -> EmbeddedStore:
    """Start nx-27017 and wait until it answers ``ping``; raise with its log tail otherwise."""
    pid_file = directory / "nx-27017.pid"
    with contextlib.suppress(FileNotFoundError):
        stale_pid = int(pid_file.read_text().strip() or 0)
        if stale_pid and not _alive(stale_pid):
            pid_file.unlink()
    port = free_port()
    process = _spawn(directory, port)
    store = EmbeddedStore(process=process, url=f"mongodb://127.0.0.1:{port}", directory=directory)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if await _port_open(port) and await _ping(store.url):
            log.info("embedded store ready", extra={"url": store.url, "dir": str(directory)})
            return store
        await asyncio.sleep(0.1)
    store.stop()
    tail = _log_tail(directory / "nx-27017.log")
    raise EmbeddedStoreError(f"embedded store in {directory} did not start: {tail}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

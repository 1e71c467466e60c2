"""Starting, feeding, listening to and stopping the gateway worker processes (see ``worker.py``).

The server process alone listens on the DICOM port. A storage association it accepts is handed,
socket and all (``SCM_RIGHTS`` over a Unix socket pair), to the worker serving the fewest
associations at that moment; each worker answers one byte when an association it was given
ends. Letting the workers listen on the port themselves (``SO_REUSEPORT``) was measured worse
than no workers at all: the kernel hashes connections to listeners, so 4 associations over 3
listeners often left one process with 2 and another with none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import threading
from dataclasses import dataclass

from server.hub import DomainEvent, EventHub

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HANDED = b"A"
FINISHED = b"D"


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    channel: socket.socket
    active: int = 0
    alive: bool = True


class Workers:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._workers: list[_Worker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = threading.Lock()
        self.handed = 0

    async def start(self, count: int, config: bytes) -> None:
        loop = asyncio.get_running_loop()
        for index in range(count):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "server.dicom.worker",
                    str(theirs.fileno()),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=1 << 20,
                    pass_fds=(theirs.fileno(),),
                )
            finally:
                theirs.close()
            ours.setblocking(False)
            worker = _Worker(process, ours)
            self._workers.append(worker)
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(config)
            await process.stdin.drain()
            ready = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            if json.loads(ready or b"{}").get("ready") is not True:
                raise RuntimeError(f"DICOM gateway worker {index} did not start")
            self._tasks.append(loop.create_task(self._relay(process), name="dicom-worker"))
            self._tasks.append(loop.create_task(self._finished(worker), name="dicom-worker-done"))
        if count:
            log.info("DICOM gateway workers started", extra={"workers": count})

    def hand_over(self, connection: socket.socket) -> bool:
        """Thread-safe: pass an accepted association to the least busy worker.

        False when no worker can take it (none started, or all gone): the caller serves it.
        Whatever happens, the caller's copy of the socket is closed only on success.
        """
        with self._lock:
            for worker in sorted((w for w in self._workers if w.alive), key=lambda w: w.active):
                try:
                    socket.send_fds(worker.channel, [HANDED], [connection.fileno()])
                except BlockingIOError:
                    continue  # its channel is full for a moment: try the next one
                except OSError:
                    worker.alive = False
                    log.error("a DICOM gateway worker stopped taking associations")
                    continue
                worker.active += 1
                self.handed += 1
                connection.close()
                return True
        return False

    def active(self) -> list[int]:
        with self._lock:
            return [w.active for w in self._workers]

    async def _finished(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(worker.channel, 256)
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    worker.alive = False
                return
            with self._lock:
                worker.active = max(0, worker.active - data.count(FINISHED))

    async def _relay(self, process: asyncio.subprocess.Process) -> None:
        """Publish a worker's events on this process' hub, in the order it sent them."""
        assert process.stdout is not None
        while line := await process.stdout.readline():
            try:
                event = json.loads(line)
                await self._hub.publish(
                    DomainEvent(event["topic"], event["data"], event.get("facility"))
                )
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable line from a DICOM gateway worker")
        if process.returncode not in (None, 0):
            log.error("a DICOM gateway worker exited", extra={"code": process.returncode})

    async def stop(self) -> None:
        with self._lock:
            for worker in self._workers:
                worker.alive = False
        for worker in self._workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self._workers:
            worker.channel.close()
        self._workers.clear()
        self._tasks.clear()

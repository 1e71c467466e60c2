"""Starting, listening to and stopping the gateway worker processes (see ``worker.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys

from server.hub import DomainEvent, EventHub

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class Workers:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._processes: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self, count: int, config: bytes) -> None:
        for index in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server.dicom.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 20,
            )
            self._processes.append(process)
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(config)
            await process.stdin.drain()
            ready = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            if json.loads(ready or b"{}").get("ready") is not True:
                raise RuntimeError(f"DICOM gateway worker {index} did not start")
            self._readers.append(
                asyncio.get_running_loop().create_task(self._relay(process), name="dicom-worker")
            )
        if count:
            log.info("DICOM gateway workers started", extra={"workers": count})

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
        for process in self._processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._processes.clear()
        self._readers.clear()

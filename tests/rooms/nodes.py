"""Running real ``noctis serve`` processes of this checkout for multi-node tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from server.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVE = "import sys; from server.cli import main; sys.exit(main(['serve']))"


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def node(
    directory: Path, *, mongo_url: str, mongo_db: str, redis_url: str, secret: str
) -> Iterator[Node]:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("NOCTIS_") and key != "PYTHONPATH"
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "NOCTIS_HTTP_PORT": str(port),
            "NOCTIS_DATA_DIR": str(directory),
            "NOCTIS_MONGO_URL": mongo_url,
            "NOCTIS_MONGO_DB": mongo_db,
            "NOCTIS_REDIS_URL": redis_url,
            "NOCTIS_SECRET_KEY": secret,
            "NOCTIS_DICOM_ENABLED": "false",
            "NOCTIS_LOG_LEVEL": "WARNING",
        }
    )
    log = directory / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    running = Node(process, f"http://127.0.0.1:{port}", log)
    try:
        yield running
    finally:
        running.stop()


async def wait_ready(target: Node, timeout_s: float = 30.0) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout_s / 0.1)):
            if target.process.poll() is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{target.url}/health/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"node did not start: {target.log.read_text()[-2000:]}")


async def login(target: Node, username: str, password: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{target.url}/api/auth/login", json={"username": username, "password": password}
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return str(body["access_token"])

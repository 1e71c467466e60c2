"""The real Noctis app served on a free loopback port from a background thread, so browser tests
(which drive Playwright's synchronous API) can reach into the running server: create accounts,
publish domain events, or drop live connections the way a network fault would."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from pydicom.dataset import Dataset

from server.app import AppOptions, build_app
from server.appkeys import HUB
from server.auth.guard import AUTH_SERVICE
from server.auth.roles import Role
from server.config import Settings
from server.dicom.keys import DICOM_OPTIONS, GATEWAY_PORT, DicomOptions
from server.hub import DomainEvent
from server.rooms.socket_server import SOCKETIO
from server.store.embedded import free_port
from tests.dicom.scu import store

T = TypeVar("T")
START_TIMEOUT_S = 60
# How long the archive waits for more images before a study counts as complete.
STABLE_AFTER_S = 1.0
CALL_TIMEOUT_S = 30


@dataclass
class LiveServer:
    app: web.Application
    loop: asyncio.AbstractEventLoop
    url: str
    settings: Settings

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine on the server's loop and waits (bounded) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT_S)

    def add_user(
        self,
        password: str,
        role: Role = Role.RADIOLOGIST,
        display_name: str | None = None,
        facility: str = "main",
    ) -> str:
        """Creates an account with a unique username and returns that username."""
        username = f"{role.value[:4]}-{uuid.uuid4().hex[:8]}"
        users = self.app[AUTH_SERVICE].users
        self.call(users.create(username, password, role, facility, display_name))
        return username

    def api(self, username: str, password: str, method: str, path: str, body: Any = None) -> Any:
        """Calls the real HTTP API as ``username`` and returns the decoded JSON answer."""

        async def go() -> Any:
            async with aiohttp.ClientSession(self.url) as http:
                login = {"username": username, "password": password}
                async with http.post("/api/auth/login", json=login) as response:
                    assert response.status == 200, await response.text()
                    token = (await response.json())["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                async with http.request(method, path, json=body, headers=headers) as response:
                    answer = await response.json()
                    assert response.status < 300, answer
                    return answer

        return self.call(go())

    @property
    def dicom_port(self) -> int:
        return self.app[GATEWAY_PORT]

    def c_store(self, ae_title: str, datasets: list[Dataset]) -> None:
        """Sends the datasets to the gateway on one association (blocking, off the loop).

        No DICOM peers are registered, so the gateway runs in its dev open mode and files what
        it receives under its open-mode facility (``OPEN_FACILITY``).
        """
        statuses = store(self.dicom_port, datasets, ae_title)
        assert statuses == [0] * len(datasets), statuses

    def publish(self, event: DomainEvent) -> None:
        self.call(self.app[HUB].publish(event))

    def drop_connections(self) -> int:
        """Disconnects every live Socket.IO client, as a server restart or a cut cable would."""
        sio = self.app[SOCKETIO]

        async def drop() -> int:
            sids = [sid for sid, _ in sio.manager.get_participants("/", None)]
            for sid in sids:
                await sio.disconnect(sid)
            return len(sids)

        return self.call(drop())


@contextmanager
def live_server(settings: Settings) -> Iterator[LiveServer]:
    loop = asyncio.new_event_loop()
    port = free_port()
    started = threading.Event()
    failure: list[BaseException] = []
    state: dict[str, Any] = {}

    async def start() -> None:
        app = build_app(settings, AppOptions(bootstrap_admin=False))
        app[DICOM_OPTIONS] = DicomOptions(stable_after_s=STABLE_AFTER_S)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        state["app"] = app
        state["runner"] = runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(state["runner"].cleanup())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name="noctis-live", daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT_S):
        raise RuntimeError("the server did not start in time")
    if failure:
        raise failure[0]
    try:
        yield LiveServer(state["app"], loop, f"http://127.0.0.1:{port}", settings)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)


def settings_for(store_url: str, data_dir: Path, secret: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        mongo_url=store_url,
        mongo_db=f"b{uuid.uuid4().hex[:16]}",
        secret_key=secret,
        dicom_enabled=True,
        dicom_port=0,
    )

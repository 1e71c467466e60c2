"""Workflow benchmark: worklist queries over a few thousand studies on the embedded store, next to
the cheapest authenticated request (``GET /api/me``) as the baseline. Prints figures; passes or
fails nothing.

    .venv/bin/python load-tests/bench_workflow.py [--studies 2000] [--requests 200]

Every phase is bounded in requests and seconds. Noctis runs in this process on a free loopback
port with its own embedded store; the load client is one aiohttp session.
"""

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from server.app import AppOptions, build_app  # noqa: E402
from server.auth.guard import AUTH_SERVICE  # noqa: E402
from server.auth.roles import Role  # noqa: E402
from server.config import Settings  # noqa: E402
from server.store.embedded import free_port, start_embedded_store  # noqa: E402
from server.workflow.service import WORKFLOW  # noqa: E402
from server.workflow.status import Priority, Status  # noqa: E402
from server.workflow.studies import NewStudy  # noqa: E402

PASSWORD = secrets.token_urlsafe(16)
PHASE_LIMIT_S = 20.0
MODALITIES = ["CT", "MR", "CR", "US"]


async def timed(
    session: aiohttp.ClientSession, method: str, url: str, requests: int, **kwargs: object
) -> list[float]:
    times: list[float] = []
    deadline = time.monotonic() + PHASE_LIMIT_S
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        async with session.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
            await response.read()
            if response.status >= 400:
                raise RuntimeError(f"{method} {url}: {response.status} {await response.text()}")
        times.append((time.perf_counter() - started) * 1000)
    return times


def row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    p50 = statistics.median(ordered)
    return f"{name:<38} n={len(ordered):<4} p50={p50:7.2f} ms  p99={p99:7.2f} ms"


async def main(studies: int, requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="noctis-bench-") as tmp:
        store = await start_embedded_store(Path(tmp) / "store")
        try:
            settings = Settings(
                data_dir=Path(tmp) / "data",
                mongo_url=store.url,
                mongo_db="bench",
                secret_key=secrets.token_urlsafe(48),
                dicom_enabled=False,
                http_port=free_port(),
            )
            app = build_app(settings, AppOptions(bootstrap_admin=False))
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", settings.http_port)
            await site.start()
            try:
                await run(app, f"http://127.0.0.1:{settings.http_port}", studies, requests)
            finally:
                await runner.cleanup()
        finally:
            store.stop()


async def run(app: web.Application, base: str, studies: int, requests: int) -> None:
    users = app[AUTH_SERVICE].users
    await users.create("reader", PASSWORD, Role.RADIOLOGIST)
    service = app[WORKFLOW].studies
    started = time.perf_counter()
    for n in range(studies):
        await service.create(
            NewStudy(
                facility="main",
                patient_id=f"P{n:06d}",
                patient_name=f"Patient^Number{n}",
                priority=list(Priority)[n % 3],
                status=Status.UNREAD,
                modality=MODALITIES[n % len(MODALITIES)],
                referring_physician="reader" if n % 10 == 0 else None,
                requested_procedure="Bench study",
            ),
            "bench",
        )
    seeded = time.perf_counter() - started
    print(f"seeded {studies} studies in {seeded:.1f} s ({studies / seeded:.0f}/s, one insert each)")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/api/auth/login", json={"username": "reader", "password": PASSWORD}
        ) as response:
            token = (await response.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        print(
            row(
                "baseline GET /api/me",
                await timed(session, "GET", f"{base}/api/me", requests, headers=auth),
            )
        )
        for name, query in [
            ("worklist first page (50)", ""),
            ("worklist STAT", "?stat=true"),
            ("worklist modality=CT status=unread", "?modality=CT&status=unread"),
            ("worklist free text (unanchored)", "?q=number1234"),
            ("worklist overdue", "?overdue=true"),
            ("worklist page 20 (offset 1000)", "?offset=1000"),
            ("worklist mine", "?mine=true"),
            ("worklist first page + exact total", "?count=true"),
        ]:
            times = await timed(
                session, "GET", f"{base}/api/worklist{query}", requests, headers=auth
            )
            print(row(name, times))
        ids = [doc["_id"] async for doc in service.collection.find({}, {"_id": 1}).limit(requests)]
        claims: list[float] = []
        deadline = time.monotonic() + PHASE_LIMIT_S
        for study_id in ids:
            if time.monotonic() > deadline:
                break
            claims += await timed(
                session, "POST", f"{base}/api/studies/{study_id}/claim", 1, headers=auth
            )
            await timed(session, "POST", f"{base}/api/studies/{study_id}/release", 1, headers=auth)
        print(row("claim (conditional update + events)", claims))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(min(args.studies, 20000), min(args.requests, 2000)))

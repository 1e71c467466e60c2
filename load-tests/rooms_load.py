"""Load generator for the realtime rooms (issue 5). Bounded in time and size, loopback only.

Starts its own embedded store, Redis (scenario 4) and server processes, drives them with real
python-socketio clients, and prints p50/p95/p99 latencies, delivered/lost counts, server CPU
and peak RSS; writes JSON and a PNG plot. Each scenario also measures a baseline in the same
run: the round trip of an event the server answers without touching the store.

  python load-tests/rooms_load.py --scenario all --duration 10 --out load-tests/results

Scenarios: 1 follow (1 presenter at 30 fps, 49 followers), 2 edits (20 rooms x 5 readers
making annotation and chat edits), 3 presence (scenario 2 plus presence at 20 Hz from every
reader), 4 edits across two nodes through Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proc_cpu import cpu_seconds  # noqa: E402

from server.auth.roles import Role  # noqa: E402
from server.auth.users import Users  # noqa: E402
from server.store.database import Store  # noqa: E402
from server.store.embedded import free_port, start_embedded_store  # noqa: E402
from tests.support.servers import redis_server  # noqa: E402

PASSWORD = "load test password 0123456789"  # noqa: S105 - throwaway accounts
SECRET = "load-test-secret-key-0123456789-0123456789-0123456789"  # noqa: S105
MAX_DURATION_S = 60


def percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


# -- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    """A process whose CPU time and peak RSS we report (servers, store, this generator)."""

    name: str
    pid: int
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    cpu_start: float = 0.0
    wall_start: float = 0.0

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def mark(self) -> None:
        self.cpu_start = self.cpu_seconds()
        self.wall_start = time.monotonic()

    def usage(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall_start
        cpu = self.cpu_seconds() - self.cpu_start
        return {
            "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
            "peak_rss_mb": self.peak_rss_mb(),
        }


@contextlib.asynccontextmanager
async def servers(count: int, tmp: Path, redis_url: str | None) -> AsyncIterator[list[Proc]]:
    store = await start_embedded_store(tmp / "db")
    database = f"load{uuid.uuid4().hex[:8]}"
    db = Store(store.url, database)
    users = Users(db)
    for n in range(6):
        await users.create(f"reader{n}", PASSWORD, Role.RADIOLOGIST, "main")
    await db["dicom_studies"].insert_many(
        [{"_id": study(n), "facility": "main"} for n in range(20)]
    )
    await db.close()
    procs: list[Proc] = []
    try:
        for n in range(count):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("NOCTIS_")}
            env.update(
                {
                    "PYTHONPATH": str(ROOT),
                    "NOCTIS_HTTP_PORT": str(port),
                    "NOCTIS_DATA_DIR": str(tmp / f"node{n}"),
                    "NOCTIS_MONGO_URL": store.url,
                    "NOCTIS_MONGO_DB": database,
                    "NOCTIS_SECRET_KEY": SECRET,
                    "NOCTIS_DICOM_ENABLED": "false",
                    "NOCTIS_LOG_LEVEL": "WARNING",
                }
            )
            if redis_url:
                env["NOCTIS_REDIS_URL"] = redis_url
            process = _spawn(env, tmp / f"node{n}.log")
            procs.append(Proc(f"node{n}", process.pid, process, f"http://127.0.0.1:{port}"))
        for proc in procs:
            await wait_ready(proc)
        store_proc = Proc("store", store.process.pid)
        yield [*procs, store_proc, Proc("generator", os.getpid())]
    finally:
        for proc in procs:
            if proc.process is not None:
                proc.process.terminate()
                try:
                    proc.process.wait(15)
                except subprocess.TimeoutExpired:
                    # A server still draining connections is not left behind on a shared machine.
                    proc.process.kill()
                    proc.process.wait(5)
        store.stop()


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "load-tests/rooms/serve.py")],
            env=env,
            stdout=out,
            stderr=out,
        )


async def wait_ready(proc: Proc) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{proc.url}/health/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not start")


async def tokens(url: str) -> list[str]:
    out = []
    async with aiohttp.ClientSession() as session:
        for n in range(6):
            async with session.post(
                f"{url}/api/auth/login", json={"username": f"reader{n}", "password": PASSWORD}
            ) as response:
                out.append((await response.json())["access_token"])
    return out


async def frame_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/bench/stats") as r:
        stats: dict[str, Any] = await r.json()
        return stats


async def store_commands(urls: list[str]) -> dict[str, int]:
    """Store commands every server has sent so far, by name (insert, find, findAndModify...),
    and ``lost_claims``: op log inserts refused because another node had taken that seq."""
    total: defaultdict[str, int] = defaultdict(int)
    for url in urls:
        stats = await frame_stats(url)
        for name, n in stats["store_commands"].items():
            total[name] += n
        total["lost_claims"] += stats["lost_claims"]
    return total


PROFILE: dict[str, Path] = {}  # --profile: where each scenario's py-spy profiles go
_profilers: list[subprocess.Popen[bytes]] = []


def mark(procs: list[Proc]) -> None:
    """The load starts: CPU counters from here, and py-spy on the servers with --profile."""
    for proc in procs:
        proc.mark()
        if "dir" in PROFILE and proc.process is not None:
            out = PROFILE["dir"] / f"{PROFILE['scenario'].name}-{proc.name}.raw"
            command = ["py-spy", "record", "-p", str(proc.pid), "-r", "100", "-f", "raw"]
            _profilers.append(
                subprocess.Popen(
                    [*command, "--nonblocking", "-o", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )


def finish(procs: list[Proc]) -> dict[str, dict[str, float]]:
    """The load ends: CPU and RSS per process; profilers stop and write their samples."""
    usage = {p.name: p.usage() for p in procs}
    while _profilers:
        profiler = _profilers.pop()
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    return usage


def study(n: int) -> str:
    return f"1.2.826.0.1.3680043.10.{n + 1}"


# -- clients ----------------------------------------------------------------------------------


@dataclass
class Reader:
    name: str
    sio: socketio.AsyncClient
    room: str
    seqs: set[int] = field(default_factory=set)


async def connect(url: str, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=20)
    return sio


async def baseline(sio: socketio.AsyncClient, count: int = 200) -> dict[str, Any]:
    """Round trips of an event answered at the boundary (unknown event): transport + dispatch."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await sio.call("bench.noop", {}, timeout=10)
        samples.append(time.perf_counter() - start)
        await asyncio.sleep(0.005)
    return percentiles(samples)


async def scenario_follow(
    url: str, duration: float, fps: int, followers: int, workers: int, procs: list[Proc]
) -> dict[str, Any]:
    """The presenter runs here; its followers run in ``workers`` processes of their own, so
    receiving 49 x 30 frames a second is not queued behind one generator's event loop. All
    processes stamp with CLOCK_MONOTONIC, which is one clock for the whole machine."""
    keys = await tokens(url)
    presenter = await connect(url, keys[0])
    sent: dict[int, float] = {}
    presenter_frames: list[float] = []
    presented: set[int] = set()
    uid = study(0)
    await presenter.call("room.join", {"study_uid": uid}, timeout=20)
    await presenter.call("follow.present", {"study_uid": uid}, timeout=20)

    def on_presenter_frame(meta: dict[str, Any], data: bytes) -> None:
        tick = meta["viewport"]["frame"]
        if meta.get("quality") != "final" or tick not in presented:
            presented.add(tick)
            presenter_frames.append(now() - sent[tick])

    presenter.on("frame", on_presenter_frame)
    shares = [followers // workers + (1 if n < followers % workers else 0) for n in range(workers)]
    spawned = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--follower-worker",
            json.dumps({"url": url, "tokens": keys[1:], "study": uid, "count": count, "first": f}),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=REPORT_LIMIT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for count, f in zip(shares, [sum(shares[:n]) for n in range(workers)], strict=True)
        if count
    ]
    for child in spawned:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"a follower worker did not start: {line!r}")
    worker_procs = [Proc(f"generator-followers{n}", c.pid) for n, c in enumerate(spawned)]
    base = await baseline(presenter)
    before = await frame_stats(url)
    mark([*procs, *worker_procs])
    ticks = int(duration * fps)
    start = now()
    for tick in range(ticks):
        sent[tick] = now()
        viewport = {
            "instance_uid": "1.2.3.4",
            "frame": tick,
            "canvas": [512, 512],
            "window_center": 40,
            "window_width": 400,
        }
        await presenter.emit("presence.update", {"study_uid": uid, "viewport": viewport})
        await asyncio.sleep(max(0.0, start + (tick + 1) / fps - now()))
    elapsed = now() - start
    usage = finish([*procs, *worker_procs])
    await asyncio.sleep(2.0)
    after = await frame_stats(url)
    latencies: list[float] = []
    per_follower: list[int] = []
    final_frames = 0
    for child in spawned:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        report = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
        await child.wait()
        final_frames += report["finals"]
        for received in report["received"]:
            latencies += [stamp - sent[tick] for tick, stamp in received if tick in sent]
            per_follower.append(len(received))
    await presenter.disconnect()
    renders = after["renders"] - before["renders"]
    return {
        "presenter_frames_sent": ticks,
        "presenter_fps": round(ticks / elapsed, 1),
        "renders": renders,
        "renders_per_s": round(renders / elapsed, 1),
        "follower_frame_latency": percentiles(latencies),
        "presenter_frame_latency": percentiles(presenter_frames),
        "frames_delivered_total": sum(per_follower),
        "frames_expected_total": ticks * followers,
        "frames_per_follower_min": min(per_follower, default=0),
        "frames_per_follower_median": statistics.median(per_follower or [0]),
        "final_quality_frames_after_rest": final_frames,
        "follower_processes": len(spawned),
        "relay": {k: after[k] - before[k] for k in after if isinstance(after[k], int | float)},
        "cpu_ms_per_frame_sent": cpu_ms_per(usage, elapsed, after["sent"] - before["sent"]),
        "baseline_noop_round_trip": base,
        "processes": usage,
        "_samples": latencies,
    }


async def follower_worker(spec: dict[str, Any]) -> None:
    """One generator process's share of scenario 1's followers: join, report ready, record
    (tick, arrival) per frame until told to stop on stdin, then print them as one JSON line."""
    url, uid = spec["url"], spec["study"]
    received: list[list[tuple[int, float]]] = []
    finals = [0]
    clients = []
    for n in range(spec["count"]):
        sio = await connect(url, spec["tokens"][(spec["first"] + n) % len(spec["tokens"])])
        mine: list[tuple[int, float]] = []
        shown: set[int] = set()
        received.append(mine)
        node: dict[str, str] = {}

        async def follow(
            payload: dict[str, Any], sio: socketio.AsyncClient = sio, node: dict[str, str] = node
        ) -> None:
            if payload.get("node") != node.get("id"):  # held by another node: ask ours
                await sio.emit(
                    "viewport.render", {"study_uid": uid, "viewport": payload["viewport"]}
                )

        def on_frame(
            meta: dict[str, Any],
            data: bytes,
            mine: list[tuple[int, float]] = mine,
            shown: set[int] = shown,
        ) -> None:
            # A final-quality frame of a view already shown comes once the view rests: counted,
            # not timed as scrolling (a server without interactive frames sends only finals).
            tick = meta["viewport"]["frame"]
            if meta.get("quality") == "final" and tick in shown:
                finals[0] += 1
            else:
                shown.add(tick)
                mine.append((tick, now()))

        sio.on("follow.viewport", follow)
        sio.on("frame", on_frame)
        node["id"] = (await sio.call("room.join", {"study_uid": uid}, timeout=60))["node"]
        clients.append(sio)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    for sio in clients:
        await sio.disconnect()
    print(json.dumps({"received": received, "finals": finals[0]}), flush=True)


def cpu_ms_per(usage: dict[str, dict[str, float]], elapsed: float, count: int) -> dict[str, float]:
    """CPU each process spent per operation: comparable across runs on a busy machine, where
    latencies are not (they include waiting for a core)."""
    return {
        name: round(u["cpu_percent_of_one_core"] / 100 * elapsed * 1000 / max(count, 1), 3)
        for name, u in usage.items()
    }


REPORT_LIMIT = 64 << 20  # a worker's one-line JSON report: ~30 bytes per frame received


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


async def scenario_edits(
    urls: list[str],
    duration: float,
    rate: float,
    presence_hz: float,
    workers: int,
    procs: list[Proc],
) -> dict[str, Any]:
    """The readers run in ``workers`` processes, whole rooms each, so one generator's event loop
    receiving every room's fan-out and presence is not what the latencies measure. A room's five
    readers share a process: each latency is stamped and read by the same clock and process."""
    keys = await tokens(urls[0])
    probe = await connect(urls[0], keys[0])
    shares = [list(range(20))[n::workers] for n in range(workers)]
    spawned = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--readers-worker",
            json.dumps(
                {
                    "urls": urls,
                    "tokens": keys,
                    "rooms": rooms,
                    "duration": duration,
                    "rate": rate,
                    "presence_hz": presence_hz,
                }
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=REPORT_LIMIT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for rooms in shares
        if rooms
    ]
    for child in spawned:
        await expect(child, b"ready")
    worker_procs = [Proc(f"generator-readers{n}", c.pid) for n, c in enumerate(spawned)]
    base = await baseline(probe)
    commands_before = await store_commands(urls)
    mark([*procs, *worker_procs])
    start = time.perf_counter()
    for child in spawned:
        await tell(child, b"go")
    for child in spawned:
        await expect(child, b"ran")
    elapsed = time.perf_counter() - start
    usage = finish([*procs, *worker_procs])
    commands = {
        name: n - commands_before.get(name, 0)
        for name, n in (await store_commands(urls)).items()
        if n > commands_before.get(name, 0)
    }
    lost_claims = commands.pop("lost_claims", 0)
    reports = []
    for child in spawned:
        await tell(child, b"report")
        assert child.stdout is not None
        reports.append(json.loads(await asyncio.wait_for(child.stdout.readline(), 120)))
        await child.wait()
    await probe.disconnect()
    total: dict[str, Any] = {
        key: sum(r[key] for r in reports)
        for key in ("readers", "acked", "ops", "live_missing", "lost", "presence_sent")
    }
    errors: defaultdict[str, int] = defaultdict(int)
    for report in reports:
        for code, n in report["errors"].items():
            errors[code] += n
    fanout = [x for r in reports for x in r["fanout"]]
    presence_lat = [x for r in reports for x in r["presence"]]
    acked = total["acked"]
    result: dict[str, Any] = {
        "readers": total["readers"],
        "nodes": len(urls),
        "reader_processes": len(spawned),
        "edits_acked": acked,
        "edit_errors": dict(errors),
        "edits_per_s": round(acked / elapsed, 1),
        "cpu_ms_per_edit": cpu_ms_per(usage, elapsed, acked),
        "store_commands_per_edit": round(sum(commands.values()) / max(acked, 1), 2),
        "store_commands": commands,
        "op_seq_claims_lost": lost_claims,
        "ops_in_store": total["ops"],
        "ack_latency": percentiles([x for r in reports for x in r["acks"]]),
        "fanout_latency": percentiles(fanout),
        "deliveries": len(fanout),
        "deliveries_expected": acked * 4,
        "live_missing_then_resynced": total["live_missing"],
        "persisted_lost": total["lost"],
        "baseline_noop_round_trip": base,
        "processes": usage,
        "_samples": fanout,
    }
    if presence_hz:
        result["presence_hz_per_reader"] = presence_hz
        result["presence_sent"] = total["presence_sent"]
        result["presence_latency"] = percentiles(presence_lat)
        result["cpu_ms_per_presence_update"] = cpu_ms_per(usage, elapsed, total["presence_sent"])
        result["_presence_samples"] = presence_lat
    return result


async def tell(child: asyncio.subprocess.Process, word: bytes) -> None:
    assert child.stdin is not None
    child.stdin.write(word + b"\n")
    await child.stdin.drain()


async def expect(child: asyncio.subprocess.Process, word: bytes) -> None:
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 120)
    if line.strip() != word:
        raise RuntimeError(f"a reader worker said {line!r}, not {word!r}")


async def readers_worker(spec: dict[str, Any]) -> None:
    """One generator process's rooms of scenarios 2-4: join, say ``ready``; on ``go`` make the
    edits and presence updates, say ``ran``; on ``report`` check every reader holds every seq of
    its room and print the counts and latency samples as one JSON line."""
    urls, keys, rate, duration = spec["urls"], spec["tokens"], spec["rate"], spec["duration"]
    presence_hz = spec["presence_hz"]
    readers: list[tuple[int, Reader]] = []
    sent: dict[str, float] = {}
    fanout: list[float] = []
    presence_sent: dict[tuple[str, str, int], float] = {}
    presence_lat: list[float] = []
    acked = 0
    acks: list[float] = []
    errors: defaultdict[str, int] = defaultdict(int)
    for room in spec["rooms"]:
        for seat in range(5):
            url = urls[(room * 5 + seat) % len(urls)]
            sio = await connect(url, keys[seat])
            reader = Reader(f"reader{seat}", sio, study(room))

            def on_op(op: dict[str, Any], reader: Reader = reader) -> None:
                reader.seqs.add(op["seq"])
                marker = op["data"].get("text") or op["data"].get("label") or ""
                if marker in sent and op["actor"]["username"] != reader.name:
                    fanout.append(time.perf_counter() - sent[marker])

            def on_presence(batch: dict[str, Any], reader: Reader = reader) -> None:
                now = time.perf_counter()
                for member in batch["members"]:
                    cursor = member.get("cursor")
                    if cursor and member["username"] != reader.name:
                        key = (batch["study_uid"], member["username"], int(cursor["x"]))
                        if key in presence_sent:
                            presence_lat.append(now - presence_sent[key])

            sio.on("room.op", on_op)
            sio.on("room.presence", on_presence)
            await sio.call("room.join", {"study_uid": reader.room}, timeout=30)
            readers.append((room * 5 + seat, reader))

    async def edits(reader: Reader, offset: float) -> None:
        nonlocal acked
        await asyncio.sleep(offset)
        mine: list[tuple[str, int]] = []
        n = 0
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            marker = f"m:{reader.room}:{reader.name}:{n}"
            sent[marker] = time.perf_counter()
            if n % 3 == 0:
                payload: dict[str, Any] = {"study_uid": reader.room, "text": marker}
                answer = await reader.sio.call("chat.send", payload, timeout=30)
            elif n % 3 == 1 or not mine:
                payload = {
                    "study_uid": reader.room,
                    "kind": "length",
                    "instance_uid": "1.2.3.4",
                    "frame": n,
                    "points": [[0, 0], [n, n]],
                    "label": marker,
                }
                answer = await reader.sio.call("annotation.create", payload, timeout=30)
                if "annotation" in answer:
                    mine.append((answer["annotation"]["id"], 1))
            else:
                ident, version = mine[-1]
                payload = {
                    "study_uid": reader.room,
                    "id": ident,
                    "version": version,
                    "label": marker,
                }
                answer = await reader.sio.call("annotation.update", payload, timeout=30)
                if "annotation" in answer:
                    mine[-1] = (ident, answer["annotation"]["version"])
            acks.append(time.perf_counter() - sent[marker])
            if answer.get("ok"):
                acked += 1
            else:
                errors[answer["error"]["code"]] += 1
            n += 1
            await asyncio.sleep(max(0.0, sent[marker] + 1 / rate - time.perf_counter()))

    async def presence(reader: Reader, offset: float) -> None:
        await asyncio.sleep(offset)
        n = 0
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            presence_sent[(reader.room, reader.name, n)] = time.perf_counter()
            cursor = {"x": n, "y": 0}
            await reader.sio.emit("presence.update", {"study_uid": reader.room, "cursor": cursor})
            n += 1
            await asyncio.sleep(1 / presence_hz)

    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    # Offsets from each reader's place among all 100, as when they all ran in one process.
    tasks = [edits(r, i / 100 / rate) for i, r in readers]
    if presence_hz:
        tasks += [presence(r, i / 100 / presence_hz) for i, r in readers]
    await asyncio.gather(*tasks)
    print("ran", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.sleep(2.0)
    # Every reader must hold every seq of its room: live, or by resync after the fact.
    live_missing = 0
    lost = 0
    for _, reader in readers:
        answer = await reader.sio.call("room.sync", {"study_uid": reader.room, "since": 0})
        replayed = {op["seq"] for op in answer.get("ops", [])}
        expected = set(range(1, answer["seq"] + 1))
        live_missing += len(expected - reader.seqs)
        lost += len(expected - reader.seqs - replayed)
    ops = 0
    for i, reader in readers:
        if i % 5 == 0:
            answer = await reader.sio.call("room.sync", {"study_uid": reader.room, "since": 0})
            ops += len(answer.get("ops", []))
    for _, reader in readers:
        await reader.sio.disconnect()
    report = {
        "readers": len(readers),
        "acked": acked,
        "errors": dict(errors),
        "ops": ops,
        "live_missing": live_missing,
        "lost": lost,
        "presence_sent": len(presence_sent),
        "acks": acks,
        "fanout": fanout,
        "presence": presence_lat,
    }
    print(json.dumps(report), flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    scenarios = ["1", "2", "3", "4"] if args.scenario == "all" else [args.scenario]
    with tempfile.TemporaryDirectory(prefix="noctis-load-") as tmp:
        for name in scenarios:
            path = Path(tmp) / name
            path.mkdir()
            if args.profile:
                PROFILE.update({"dir": args.out, "scenario": Path(name)})
            redis = redis_server() if name == "4" else contextlib.nullcontext(None)
            with redis as redis_url:
                async with servers(2 if name == "4" else 1, path, redis_url) as procs:
                    nodes = [p.url for p in procs if p.url]
                    if name == "1":
                        result = await scenario_follow(
                            nodes[0], args.duration, 30, args.followers, args.workers, procs
                        )
                    else:
                        hz = 20.0 if name == "3" else 0.0
                        result = await scenario_edits(
                            nodes, args.duration, args.rate, hz, args.workers, procs
                        )
            result["machine_load_average_1m"] = round(os.getloadavg()[0], 2)
            results[name] = result
            print_result(name, result)
    return results


TITLES = {
    "1": "1 follow: 1 presenter x 30 fps, 49 followers",
    "2": "2 edits: 20 rooms x 5 readers",
    "3": "3 presence 20 Hz + edits: 20 rooms x 5 readers",
    "4": "4 edits across 2 nodes through Redis",
}


def print_result(name: str, result: dict[str, Any]) -> None:
    print(f"\n== scenario {TITLES[name]}")
    for key, value in result.items():
        if not key.startswith("_"):
            print(f"  {key}: {json.dumps(value)}")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for axis, (name, result) in zip(axes[0], results.items(), strict=True):
        for label, key in (("fan-out / frames", "_samples"), ("presence", "_presence_samples")):
            samples = sorted(s * 1000 for s in result.get(key, []))
            if samples:
                ys = [i / len(samples) for i in range(len(samples))]
                axis.plot(samples, ys, label=label)
        axis.set_title(TITLES[name], fontsize=9)
        axis.set_xlabel("latency (ms)")
        axis.set_ylabel("fraction")
        axis.set_xscale("log")
        axis.grid(True, alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=["1", "2", "3", "4", "all"], default="all")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=1.0, help="edits/s per reader (2-4)")
    parser.add_argument("--followers", type=int, default=49, help="scenario 1 (max 200)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes holding the followers (1) or the readers, whole rooms each (2-4)",
    )
    parser.add_argument("--follower-worker", help=argparse.SUPPRESS)
    parser.add_argument("--readers-worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record each server during the load (py-spy on PATH); raw stacks in --out",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "load-tests/results")
    args = parser.parse_args()
    if args.follower_worker:
        asyncio.run(follower_worker(json.loads(args.follower_worker)))
        return
    if args.readers_worker:
        asyncio.run(readers_worker(json.loads(args.readers_worker)))
        return
    args.duration = min(args.duration, MAX_DURATION_S)
    args.followers = min(args.followers, 200)
    args.workers = max(1, min(args.workers, 8))
    args.out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(args))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    clean = {n: {k: v for k, v in r.items() if not k.startswith("_")} for n, r in results.items()}
    (args.out / f"rooms-{stamp}.json").write_text(json.dumps(clean, indent=2))
    plot(results, args.out / f"rooms-{stamp}.png")
    print(f"\nwrote {args.out}/rooms-{stamp}.json and .png")


if __name__ == "__main__":
    main()

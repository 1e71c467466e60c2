"""Render benchmark: in-process floor, Noctis' HTTP frame endpoint, Orthanc beside it, and
memory while scrolling a 1000-slice series. Prints figures; passes or fails nothing.

    .venv/bin/python load-tests/bench_render.py [--quick]

Every phase is bounded in requests and seconds. Noctis and Orthanc each run in their own
process on a free loopback port; the load client is this process, the same for both.
Orthanc (Debian `orthanc` + `orthanc-dicomweb`) is skipped with a note when not installed.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from proc_cpu import cpu_seconds  # noqa: E402

from server.eventloop import new_event_loop  # noqa: E402
from server.render.decode import decode_bytes, decode_known  # noqa: E402
from server.render.encode import Encoding, encode  # noqa: E402
from server.render.voi_lut import Window, render_grey  # noqa: E402
from server.runtime import tune_garbage_collector  # noqa: E402
from tests.support.synthetic import ct_series, write_series  # noqa: E402

WINDOW = (40.0, 400.0)
QUALITY = 85
NO_GZIP = {"Accept-Encoding": "identity"}


# -- data -------------------------------------------------------------------------------------


def make_series(directory: Path, slices: int) -> tuple[str, str, list[str]]:
    """Write a synthetic CT series into `directory` and add it to the directory's index."""
    datasets = ct_series(slices)
    write_series(directory, datasets)
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    study, series = str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)
    path = directory / "index.json"
    index = json.loads(path.read_text()) if path.exists() else {}
    index[series] = uids
    path.write_text(json.dumps(index))
    return study, series, uids


class DirectoryArchive:
    """Part 10 files read from disk in a thread: the loader for the scroll memory check, which
    measures the render service alone (the HTTP phases use the real archive)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.index: dict[str, list[str]] = json.loads((directory / "index.json").read_text())

    async def instance_bytes(self, sop_instance_uid: str) -> bytes:
        path = self.directory / f"{sop_instance_uid}.dcm"
        if not path.exists():
            raise KeyError(sop_instance_uid)
        return await asyncio.to_thread(path.read_bytes)

    async def instance(self, sop_instance_uid: str, facility: str | None = None) -> object:
        if not (self.directory / f"{sop_instance_uid}.dcm").exists():
            raise KeyError(sop_instance_uid)
        return sop_instance_uid

    async def series_instance_uids(
        self, series_instance_uid: str, facility: str | None = None
    ) -> list[str]:
        return list(self.index[series_instance_uid])


# -- (a) in-process floor ---------------------------------------------------------------------


def timed(work: Callable[[], object], repeat: int) -> float:
    work()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def floor(directory: Path, uids: list[str]) -> dict[str, float]:
    files = [(directory / f"{uid}.dcm").read_bytes() for uid in uids[:60]]
    decoded = decode_bytes(files[0])
    info = decoded.info
    window = Window(*WINDOW)
    stored = decoded.pixels
    slope, intercept = info.modality_lut.slope, info.modality_lut.intercept

    def numpy_opencv() -> None:
        hu = stored.astype(np.float32) * slope + intercept
        low = WINDOW[0] - 0.5 - (WINDOW[1] - 1) / 2
        grey = np.clip((hu - low) * (255.0 / (WINDOW[1] - 1)), 0, 255).astype(np.uint8)
        cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])

    def pipeline() -> None:
        grey = render_grey(
            stored, info.modality_lut, window, invert=False, stored_range=info.stored_range
        )
        encode(grey, Encoding(quality=QUALITY))

    return {
        "decode": statistics.median(timed(partial(decode_bytes, f), 1) for f in files),
        "decode_known": statistics.median(
            timed(partial(decode_known, f, decode_bytes(f).info, 0), 1) for f in files
        ),
        "numpy_opencv": timed(numpy_opencv, 200),
        "pipeline": timed(pipeline, 200),
    }


# -- HTTP load ----------------------------------------------------------------------------------


async def load(
    urls: list[str], clients: int, headers: dict[str, str], seconds: float
) -> tuple[float, float, float, int]:
    """Each client walks its share of `urls` sequentially on one keep-alive connection."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client(share: list[str]) -> None:
            for url in share:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} -> {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(urls[i::clients]) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    return p50, p95, len(latencies) / elapsed, len(latencies)


WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_URLS")) do paths[#paths + 1] = line end
local threads_n = tonumber(os.getenv("BENCH_THREADS"))
local counter = 0
id = 0
local made = 0
function setup(thread) thread:set("id", made); made = made + 1 end
function request()
  local i = (id + counter * threads_n) % #paths + 1
  counter = counter + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"p50": %f, "p95": %f, "requests": %d, "duration_us": %d, '
    .. '"errors": %d, "non2xx": %d}\\n', latency:percentile(50), latency:percentile(95),
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def wrk_load(
    base: str, paths: list[str], clients: int, headers: dict[str, str], seconds: float, work: Path
) -> tuple[float, float, float, int]:
    """wrk (C, keep-alive) as the load client when installed, so the client is not the limit."""
    threads = min(clients, 2)
    (work / "urls.txt").write_text("\n".join(paths) + "\n")
    (work / "bench.lua").write_text(WRK_SCRIPT)
    command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds:.0f}s"]
    command += ["--timeout", "10s", "-s", str(work / "bench.lua")]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    env = {**os.environ, "BENCH_URLS": str(work / "urls.txt"), "BENCH_THREADS": str(threads)}
    finished = subprocess.run(
        [*command, base], env=env, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    if finished.returncode != 0 or "BENCH " not in finished.stdout:
        raise RuntimeError(f"wrk failed: {finished.stdout[-500:]} {finished.stderr[-500:]}")
    output = finished.stdout
    summary = json.loads(output.split("BENCH ", 1)[1].splitlines()[0])
    if summary["errors"] or summary["non2xx"]:
        raise RuntimeError(f"wrk saw errors: {summary}")
    rate = summary["requests"] / (summary["duration_us"] / 1e6)
    return summary["p50"] / 1000, summary["p95"] / 1000, rate, summary["requests"]


def wait_http(url: str, seconds: float = 30.0) -> None:
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- Noctis server (child process) --------------------------------------------------------------


def serve(directory: Path, port: int, decoded_mb: int, loader: str) -> None:
    """Child mode: the real app (embedded store, DICOM archive, auth) with the render routes on
    the archive; stores the series through STOW-RS, prints a reader's token, then serves."""
    from aiohttp import web

    from server.app import AppOptions, build_app
    from server.auth.guard import AUTH_SERVICE
    from server.auth.roles import Role
    from server.config import Settings
    from server.http.render_routes import RENDER_ARCHIVE, RENDER_SETTINGS
    from server.render.service import RenderSettings
    from tests.support.servers import embedded_store

    with embedded_store() as store, tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            mongo_url=store.url,
            secret_key=secrets.token_hex(32),
            dicom_enabled=False,
            http_port=port,
        )
        app = build_app(settings, AppOptions(bootstrap_admin=False))
        app[RENDER_SETTINGS] = RenderSettings(decoded_cache_bytes=decoded_mb << 20)
        if loader == "files":
            app[RENDER_ARCHIVE] = DirectoryArchive(directory)
        base = f"http://127.0.0.1:{port}"

        async def token(session: aiohttp.ClientSession, username: str, role: Role) -> str:
            password = secrets.token_urlsafe(16)
            await app[AUTH_SERVICE].users.create(username, password, role, "main")
            body = {"username": username, "password": password}
            async with session.post(f"{base}/api/auth/login", json=body) as response:
                return str((await response.json())["access_token"])

        async def main() -> None:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            async with aiohttp.ClientSession() as session:
                uploader = await token(session, "benchtech", Role.TECHNICIAN)
                reader = await token(session, "bench", Role.RADIOLOGIST)
            if loader == "archive":
                await asyncio.to_thread(stow, base, uploader, directory)
            print(reader, flush=True)
            await asyncio.Event().wait()

        import logging

        logging.disable(logging.INFO)
        tune_garbage_collector()  # as `noctis serve` does
        loop = new_event_loop() if os.environ.get("BENCH_STDLIB_LOOP") != "1" else None
        with asyncio.Runner(loop_factory=(lambda: loop) if loop else None) as runner:
            runner.run(main())


def stow(base: str, token: str, directory: Path) -> None:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(f"{base}/dicom-web", headers={"Authorization": f"Bearer {token}"})
    paths = sorted(directory.glob("*.dcm"))
    for start in range(0, len(paths), 25):
        client.store_instances([pydicom.dcmread(p) for p in paths[start : start + 25]])


# -- memory while scrolling (child process) -----------------------------------------------------


def scroll(directory: Path, decoded_mb: int, encoded_mb: int) -> None:
    from server.render.models import RenderRequest
    from server.render.service import RenderService, RenderSettings
    from server.render.viewport import Viewport

    def rss_mb(field: str = "VmRSS:") -> float:
        """VmRSS now, or VmHWM (this process image's peak; ru_maxrss would include the
        parent's memory from before exec)."""
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return 0.0

    async def main() -> dict[str, float]:
        archive = DirectoryArchive(directory)
        settings = RenderSettings(
            decoded_cache_bytes=decoded_mb << 20, encoded_cache_bytes=encoded_mb << 20
        )
        service = RenderService(archive, settings)
        series, uids = next(iter(archive.index.items()))
        await service.render(RenderRequest(uids[0]))
        baseline = rss_mb()
        started = time.perf_counter()
        for uid in uids:
            await service.render_for_viewer(
                "scroller",
                RenderRequest(uid, viewport=Viewport(canvas=(1024, 1024))),
                series_instance_uid=series,
            )
        elapsed = time.perf_counter() - started
        await service.wait_idle()
        result = {
            "baseline_rss_mb": baseline,
            "final_rss_mb": rss_mb(),
            "decoded_mb": service.decoded.nbytes / 2**20,
            "encoded_mb": service.encoded.nbytes / 2**20,
            "slices_per_s": len(uids) / elapsed,
        }
        await service.close()
        return result

    result = asyncio.run(main())
    result["peak_rss_mb"] = rss_mb("VmHWM:")
    print(json.dumps(result))


# -- Orthanc ------------------------------------------------------------------------------------


def start_orthanc(work: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("Orthanc")
    plugin = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
    if binary is None or not plugin.exists():
        return None
    port = free_port()
    storage = work / "orthanc-storage"
    config = {
        "Name": "bench",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpCompressionEnabled": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [binary, str(path)],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/system")
    return process, port


async def upload_orthanc(port: int, directory: Path, uids: list[str]) -> dict[str, str]:
    ids = {}
    async with aiohttp.ClientSession() as session:
        for uid in uids:
            data = (directory / f"{uid}.dcm").read_bytes()
            async with session.post(f"http://127.0.0.1:{port}/instances", data=data) as response:
                ids[uid] = (await response.json())["ID"]
    return ids


# -- main ---------------------------------------------------------------------------------------

Figures = tuple[float, float, float, int]


def run_load(
    base: str, paths: list[str], clients: int, headers: dict[str, str], seconds: float, work: Path
) -> Figures:
    if shutil.which("wrk"):
        return wrk_load(base, paths, clients, headers, seconds, work)
    return asyncio.run(load([base + p for p in paths], clients, headers, seconds))


def client_cpu_seconds() -> float:
    """CPU of this process (the aiohttp client) plus finished children (wrk runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_per_frame(pid: int, run: Callable[[], Figures]) -> tuple[Figures, float, float]:
    """The load's figures with the server's and the load client's CPU microseconds per
    frame: CPU time is what a shared, busy machine distorts least."""
    server, client = cpu_seconds(pid), client_cpu_seconds()
    figures = run()
    count = max(1, figures[3])
    server_us = (cpu_seconds(pid) - server) / count * 1e6
    client_us = (client_cpu_seconds() - client) / count * 1e6
    return figures, server_us, client_us


def cpu_line(name: str, measured: tuple[Figures, float, float]) -> None:
    figures, server_us, client_us = measured
    p50, _, rate, _ = figures
    print(
        f"  {name:<46} {rate:7.0f} frames/s  p50 {p50:5.2f} ms  server {server_us:4.0f} us CPU"
        f"/frame, load client {client_us:4.0f} us CPU/frame"
    )


def line(name: str, figures: Figures) -> None:
    p50, p95, rate, count = figures
    print(f"  {name:<46} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  {rate:7.0f} frames/s  (n={count})")


def noctis_phases(
    base: str,
    token: str,
    uids: list[str],
    seconds: float,
    work: Path,
    *,
    warm_too: bool,
    pid: int = 0,
) -> dict[str, Figures]:
    auth = {**NO_GZIP, "Authorization": f"Bearer {token}"}
    results: dict[str, Figures] = {}
    # The reader has opened the series once (header facts and facility check known, as for
    # any series being read); "first sight" below measures instances never touched before.
    opened = [f"/api/render/instances/{uid}/frames/1?window=0,100" for uid in uids]
    asyncio.run(load([base + path for path in opened], 4, auth, 60))
    offset = 0
    for clients in (1, 8, 32):
        # Every request a new (slice, window) key, so no render is cached. Whether the slice's
        # pixels are still decoded depends on the server's decoded cache (see the callers).
        paths = [
            f"/api/render/instances/{uids[(offset + i) % len(uids)]}/frames/1"
            f"?window={WINDOW[0] + offset + i:g},{WINDOW[1]:g}&jpeg={QUALITY}"
            for i in range(40_000)
        ]
        offset += 40_000
        figures = run_load(base, paths, clients, auth, seconds, work)
        results[f"cold{clients}"] = figures
        line(f"cold (new slice+window), {clients} client(s)", figures)
    if not warm_too:
        return results
    warm = [
        f"/api/render/instances/{uids[i]}/frames/1?window=40,400&jpeg={QUALITY}" for i in range(4)
    ]
    run_load(base, warm, 1, auth, 1, work)
    for clients in (1, 8, 32):
        figures = run_load(base, warm, clients, auth, seconds, work)
        results[f"warm{clients}"] = figures
        line(f"warm (shared render), {clients} client(s)", figures)
    if pid:
        print("  warm, 8 clients, CPU per frame by load client (same URLs, same server):")
        for name, run in load_clients(base, warm, auth, seconds, work):
            cpu_line(f"  {name}", cpu_per_frame(pid, run))
    return results


def load_clients(
    base: str, paths: list[str], headers: dict[str, str], seconds: float, work: Path
) -> list[tuple[str, Callable[[], Figures]]]:
    """wrk (when installed) and the aiohttp client, 8 connections each, on the same paths."""
    clients: list[tuple[str, Callable[[], Figures]]] = []
    if shutil.which("wrk"):
        clients.append(("wrk", partial(wrk_load, base, paths, 8, headers, seconds, work)))
    urls = [base + path for path in paths] * 20_000
    clients.append(("aiohttp", lambda: asyncio.run(load(urls, 8, headers, seconds))))
    return clients


@contextlib.contextmanager
def noctis_server(series_dir: Path, loader: str, decoded_mb: int) -> Iterator[tuple[str, str, int]]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", str(series_dir), "--port", str(port)]
    command += ["--decoded-mb", str(decoded_mb), "--loader", loader]
    server = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        token = server.stdout.readline().decode().strip()
        yield f"http://127.0.0.1:{port}", token, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def first_sight(base: str, token: str, unseen: list[str]) -> None:
    """Instances the server has never seen: the header is parsed too (aiohttp client, one
    request per instance, so counts are exact)."""
    auth = {**NO_GZIP, "Authorization": f"Bearer {token}"}
    print("  first sight (instance never read before; aiohttp client):")
    for clients, chunk in ((1, unseen[:100]), (8, unseen[100:])):
        urls = [f"{base}/api/render/instances/{uid}/frames/1?jpeg={QUALITY}" for uid in chunk]
        line(f"  first sight, {clients} client(s)", asyncio.run(load(urls, clients, auth, 60)))


def orthanc_phases(
    port: int,
    ids: dict[str, str],
    uids: list[str],
    study: str,
    series: str,
    seconds: float,
    work: Path,
    pid: int,
) -> dict[str, Figures]:
    base = f"http://127.0.0.1:{port}"
    headers = {**NO_GZIP, "Accept": "image/jpeg"}
    results = {}
    print("(c) Orthanc 1.10 on the same instances, same window and JPEG quality")
    native = [
        f"/instances/{ids[uid]}/rendered"
        f"?quality={QUALITY}&window-center={WINDOW[0]:g}&window-width={WINDOW[1]:g}"
        for uid in uids
    ]
    dicomweb = [
        f"/dicom-web/studies/{study}/series/{series}/instances/{uid}"
        f"/rendered?window={WINDOW[0]:g},{WINDOW[1]:g},linear&quality={QUALITY}"
        for uid in uids
    ]
    for name, paths in (("native", native), ("DICOMweb", dicomweb)):
        for clients in (1, 8, 32):
            figures = run_load(base, paths, clients, headers, seconds, work)
            results[f"{name}{clients}"] = figures
            line(f"{name} rendered, {clients} client(s)", figures)
    print("  native, 8 clients, CPU per frame by load client (same URLs, same server):")
    for name, run in load_clients(base, native, headers, seconds, work):
        cpu_line(f"  {name}", cpu_per_frame(pid, run))
    return results


def summarize(noctis: dict[str, Figures], orthanc: dict[str, Figures], floor_total: float) -> None:
    faster = max(orthanc["native8"][2], orthanc["DICOMweb8"][2])
    print("targets (issue 4)")
    print(
        f"  cold frames/s at 8 clients {noctis['cold8'][2]:.0f} vs faster Orthanc {faster:.0f}:"
        f" {noctis['cold8'][2] / faster:.2f}x (target >= 1.0x)"
    )
    print(
        f"  cold p50 at 1 client {noctis['cold1'][0]:.2f} ms vs Orthanc DICOMweb "
        f"{orthanc['DICOMweb1'][0]:.2f} ms (target <=)"
    )
    print(
        f"  warm frames/s at 8 clients {noctis['warm8'][2]:.0f}:"
        f" {noctis['warm8'][2] / faster:.1f}x the faster Orthanc (target >= 10x)"
    )
    print(
        f"  cold p50 at 1 client {noctis['cold1'][0]:.2f} ms vs 2x floor incl. decode "
        f"{2 * floor_total:.2f} ms (target <=)"
    )
    for key, label in (("redecode", "re-reading + decoding"), ("files", "decoding, no store")):
        print(
            f"  {label}: cold {noctis[f'{key}_cold8'][2]:.0f} frames/s at 8 clients"
            f" ({noctis[f'{key}_cold8'][2] / faster:.2f}x), p50 {noctis[f'{key}_cold1'][0]:.2f} ms"
            " at 1 client"
        )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def scroll_phase(work: Path, slices: int, decoded_mb: int, encoded_mb: int) -> None:
    scroll_dir = work / "scroll"
    make_series(scroll_dir, slices)
    command = [sys.executable, __file__, "--scroll", str(scroll_dir)]
    command += ["--decoded-mb", str(decoded_mb), "--encoded-mb", str(encoded_mb)]
    result = subprocess.run(command, capture_output=True, check=True, timeout=900)
    memory = json.loads(result.stdout)
    growth = memory["peak_rss_mb"] - memory["baseline_rss_mb"]
    print(f"(d) one viewer scrolling {slices} slices, 1024x1024 canvas, prefetch on")
    print(
        f"  RSS after first frame {memory['baseline_rss_mb']:.0f} MB, "
        f"final {memory['final_rss_mb']:.0f} MB, peak {memory['peak_rss_mb']:.0f} MB "
        f"(growth {growth:.0f} MB)"
    )
    print(
        f"  caches hold {memory['decoded_mb']:.0f} MB decoded + {memory['encoded_mb']:.0f} MB"
        f" encoded; bounds {decoded_mb} + {encoded_mb} = {decoded_mb + encoded_mb} MB;"
        f" {memory['slices_per_s']:.0f} slices/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", type=Path)
    parser.add_argument("--scroll", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--decoded-mb", type=int, default=256)
    parser.add_argument("--encoded-mb", type=int, default=64)
    parser.add_argument("--scroll-slices", type=int, default=1000)
    parser.add_argument("--loader", choices=("archive", "files"), default="archive")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.decoded_mb, args.loader)
        return
    if args.scroll:
        scroll(args.scroll, args.decoded_mb, args.encoded_mb)
        return
    seconds = 3.0 if args.quick else 6.0
    print(f"cores: {os.cpu_count()}; load average at start: {load_average()}")
    print(f"load client: {'wrk' if shutil.which('wrk') else 'aiohttp (install wrk for better)'}")
    with tempfile.TemporaryDirectory(prefix="noctis-bench-") as tmp:
        work = Path(tmp)
        series_dir = work / "series"
        study, series, uids = make_series(series_dir, 200)
        _, _, unseen = make_series(series_dir, 200)
        figures = floor(series_dir, uids)
        floor_total = figures["pipeline"] + figures["decode"]
        print("(a) in-process floor, one 512x512 CT frame, one thread, median")
        print(f"  numpy + OpenCV W/L + JPEG q{QUALITY}:        {figures['numpy_opencv']:6.2f} ms")
        print(f"  Noctis pipeline W/L + JPEG q{QUALITY}:       {figures['pipeline']:6.2f} ms")
        print(f"  decode (dcmread + header + pixels):  {figures['decode']:6.2f} ms")
        print(f"  floor incl. decode:                  {floor_total:6.2f} ms")
        print(f"  decode when the header is known:     {figures['decode_known']:6.2f} ms")

        print("(b) Noctis HTTP /api/render/instances/{uid}/frames/1, 512x512 CT, JPEG q85")
        print("  real app (embedded store, DICOM archive with the series STOW-RS'd, auth, facility")
        print("  check), default caches: the decoded slices stay cached after the series is")
        print("  opened, as Orthanc's 128 MB storage cache keeps its files")
        with noctis_server(series_dir, "archive", 512) as (base, token, pid):
            noctis = noctis_phases(base, token, uids, seconds, work, warm_too=True, pid=pid)
            first_sight(base, token, unseen)
        print("  decoded cache cut to 16 MB (32 of 200 slices): every request also reads the")
        print("  archive and decodes")
        with noctis_server(series_dir, "archive", 16) as (base, token, _):
            redecode = noctis_phases(base, token, uids, seconds, work, warm_too=False)
        print("  the same with the archive replaced by a plain file loader (no store lookup)")
        with noctis_server(series_dir, "files", 16) as (base, token, _):
            files = noctis_phases(base, token, uids, seconds, work, warm_too=False)
        noctis.update({f"redecode_{k}": v for k, v in redecode.items()})
        noctis.update({f"files_{k}": v for k, v in files.items()})

        orthanc = start_orthanc(work)
        if orthanc is None:
            print("(c) Orthanc: not installed (apt-get install orthanc orthanc-dicomweb); skipped")
        else:
            process, orthanc_port = orthanc
            try:
                ids = asyncio.run(upload_orthanc(orthanc_port, series_dir, uids))
                theirs = orthanc_phases(
                    orthanc_port, ids, uids, study, series, seconds, work, process.pid
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
            summarize(noctis, theirs, floor_total)
        shutil.rmtree(series_dir)
        scroll_phase(work, args.scroll_slices, args.decoded_mb, args.encoded_mb)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

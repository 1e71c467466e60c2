"""C-STORE throughput and QIDO latency: Noctis beside a bare pynetdicom SCP and Orthanc.

Sends one generated CT series (default 300 slices of 512 x 512) with dcmtk's ``storescu`` on 1
and on 4 concurrent associations to each target, each run with fresh UIDs (same pixels), and
prints images/s and the ratios. Orthanc runs only when Debian's ``orthanc`` is installed; it and
storescu get ``TCP_NODELAY=1`` (dcmtk otherwise leaves Nagle on and stalls ~50 ms per image);
the bare SCP announces an unlimited PDU like Noctis does, so storescu sends 128 KiB PDUs to both.
Each line shows the load average then; on a shared machine ``--repeat N`` keeps each target's
best of N sends (the same for all targets). Each line also shows the CPU time the send cost per
image, read from ``/proc``: the target's processes (for Noctis: server, store, gateway workers)
and storescu's. When the cores are the limit (4 associations on 2 cores), that sum bounds the
rate: cores / (CPU per image).
Then it loads small studies into Noctis and Orthanc and prints the QIDO latency of a wildcard
study search and of listing the instances of the big series.

    .venv/bin/python load-tests/bench_ingest.py [--slices 300] [--studies 500] [--repeat 1]

A benchmark, not a test: every wait is bounded, every port is a free loopback port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proc_cpu import process_table  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from tests.dicom.synthetic import ct_series  # noqa: E402

ENV = {**os.environ, "TCP_NODELAY": "1"}
SETTLE_S = 5.0
BARE_SCP = """
import sys
from pathlib import Path
from pynetdicom import AE, AllStoragePresentationContexts, ALL_TRANSFER_SYNTAXES, evt
out = Path(sys.argv[2])
def on_store(event):
    (out / (event.request.AffectedSOPInstanceUID + ".dcm")).write_bytes(event.encoded_dataset())
    return 0
ae = AE("BARE")
ae.maximum_associations = 16
ae.maximum_pdu_size = 0  # at its best: storescu then sends 128 KiB PDUs instead of 16 KiB ones
for cx in AllStoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
ae.start_server(("127.0.0.1", int(sys.argv[1])), evt_handlers=[(evt.EVT_C_STORE, on_store)])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {within} s")


def write_series(directory: Path, slices: int, rows: int, study_uid: str | None = None) -> Path:
    directory.mkdir(parents=True)
    series = ct_series(slices, rows=rows, columns=rows, study_uid=study_uid)
    for index, raw in enumerate(series.files()):
        (directory / f"{index:04d}.dcm").write_bytes(raw)
    return directory


def storescu(port: int, called: str, files: list[Path], associations: int) -> float:
    """Send ``files`` over ``associations`` concurrent storescu processes; return images/s."""
    groups = [files[i::associations] for i in range(associations)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-aet", "BENCH", "-aec", called, "127.0.0.1", str(port), *map(str, g)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for g in groups
    ]
    for process in processes:
        _out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")
    return len(files) / (time.perf_counter() - started)


@dataclass
class Target:
    name: str
    called: str
    port: int
    http: str | None = None
    token: str | None = None
    pid: int | None = None

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(f"{self.http}{path}")  # noqa: S310 - loopback only
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            body: bytes = response.read()
            return body


def role(command: str) -> str:
    if "server.dicom.worker" in command:
        return "workers"
    if "nx_27017" in command:
        return "store"
    return "server"


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds used so far by ``root`` and its descendants, by role."""
    table = process_table()
    members = {root}
    grown = True
    while grown:
        grown = False
        for pid, (parent, _cpu, _command) in table.items():
            if parent in members and pid not in members:
                members.add(pid)
                grown = True
    used: dict[str, float] = {}
    for pid in members & table.keys():
        _parent, cpu, command = table[pid]
        used[role(command)] = used.get(role(command), 0.0) + cpu
    return used


@dataclass
class Send:
    rate: float
    target_ms: dict[str, float]
    storescu_ms: float

    def cpu_text(self) -> str:
        total = f"{sum(self.target_ms.values()):.1f}"
        if len(self.target_ms) > 1:
            roles = " + ".join(f"{name} {ms:.1f}" for name, ms in sorted(self.target_ms.items()))
            total = f"{total} ({roles})"
        return f"CPU/img: target {total} ms, storescu {self.storescu_ms:.1f} ms"


def measured_send(target: Target, files: list[Path], associations: int) -> Send:
    """``storescu`` plus the CPU that send cost per image, on both sides."""
    assert target.pid is not None
    before, reaped = tree_cpu(target.pid), os.times()
    rate = storescu(target.port, target.called, files, associations)
    after, reaped_after = tree_cpu(target.pid), os.times()
    per_image = {
        name: 1000 * (used - before.get(name, 0.0)) / len(files) for name, used in after.items()
    }
    storescu_s = (reaped_after.children_user + reaped_after.children_system) - (
        reaped.children_user + reaped.children_system
    )
    return Send(rate, per_image, 1000 * storescu_s / len(files))


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run from the checkout this script is in, so ``-c``/``-m`` import its ``server``."""
    with log.open("wb") as handle:
        proc = subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def noctis_env(data: Path, workers: int = 0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOCTIS_")}
    env.update(
        NOCTIS_DATA_DIR=str(data),
        NOCTIS_SECRET_KEY=secrets.token_urlsafe(48),
        NOCTIS_LOG_LEVEL="WARNING",
        NOCTIS_DICOM_WORKERS=str(workers),
    )
    return env


CLI = [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())"]


@contextlib.contextmanager
def noctis(work: Path, workers: int) -> Iterator[Target]:
    data = work / "noctis"
    env = noctis_env(data, workers)
    password = secrets.token_urlsafe(16)
    subprocess.run(
        [*CLI, "user", "add", "bench", "--role", "admin", "--password-stdin"],
        input=f"{password}\n".encode(),
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )
    http, dicom = free_port(), free_port()
    args = [*CLI, "serve", "--port", str(http), "--dicom-port", str(dicom)]
    with process(args, {**env, **{"PYTHONPATH": str(ROOT)}}, work / "noctis.log") as proc:
        wait_port(http)
        wait_port(dicom)
        base = f"http://127.0.0.1:{http}"
        login = urllib.request.Request(  # noqa: S310 - loopback only
            f"{base}/api/auth/login",
            data=json.dumps({"username": "bench", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=30) as response:  # noqa: S310
            token = json.loads(response.read())["access_token"]
        yield Target("Noctis", "NOCTIS", dicom, f"{base}/dicom-web", token, proc.pid)


@contextlib.contextmanager
def bare(work: Path) -> Iterator[Target]:
    out = work / "bare"
    out.mkdir()
    port = free_port()
    args = [sys.executable, "-c", BARE_SCP, str(port), str(out)]
    with process(args, ENV, work / "bare.log") as proc:
        wait_port(port)
        yield Target("bare pynetdicom", "BARE", port, pid=proc.pid)


@contextlib.contextmanager
def orthanc(work: Path) -> Iterator[Target | None]:
    binary = shutil.which("Orthanc")
    if binary is None:
        yield None
        return
    http, dicom = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(work / "orthanc"),
        "IndexDirectory": str(work / "orthanc"),
        "HttpPort": http,
        "DicomPort": dicom,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "ConcurrentJobs": 2,
    }
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    with process([binary, str(path)], ENV, work / "orthanc.log") as proc:
        wait_port(http)
        wait_port(dicom)
        web = f"http://127.0.0.1:{http}/dicom-web"
        yield Target("Orthanc", "ORTHANC", dicom, web, pid=proc.pid)


FACTORIES = {"bare": bare, "orthanc": orthanc}


def with_fresh_uids(source: Path, target: Path) -> list[Path]:
    """The same pixels under new UIDs, so each run stores new objects."""
    from pydicom import dcmread

    target.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for path in sorted(source.iterdir()):
        ds = dcmread(path)
        uid = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        out = target / path.name
        ds.save_as(out, enforce_file_format=True)
        paths.append(out)
    return paths


def timed_ms(target: Target, path: str, runs: int = 7) -> tuple[float, float, int]:
    """First (cold) latency, then the median of ``runs`` repeats, and the result count."""
    times = []
    count = 0
    for _ in range(runs + 1):
        started = time.perf_counter()
        count = len(json.loads(target.get(path) or b"[]"))
        times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times[1:]), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument(
        "--workers",
        default="2",
        help="NOCTIS_DICOM_WORKERS for the Noctis run; a list (0,2) runs one Noctis per value",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="send each case this many times per target and keep the best (a shared machine)",
    )
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        raise SystemExit("storescu (Debian package dcmtk) is required")
    with tempfile.TemporaryDirectory(prefix="noctis-bench-") as tmp:
        work = Path(tmp)
        source = write_series(work / "series", args.slices, args.rows)
        runs = {
            (n, r): with_fresh_uids(source, work / f"run{n}-{r}")
            for n in (1, 4)
            for r in range(args.repeat)
        }
        rates: dict[str, dict[int, float]] = {}
        targets: dict[str, Target] = {}
        worker_counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
        noctis_names = []
        with contextlib.ExitStack() as stack:
            print(
                f"{args.slices} slices of {args.rows}x{args.rows}; Noctis with "
                f"{args.workers} gateway worker process(es)"
            )
            for name in [*(f"noctis{w}" for w in worker_counts), "bare", "orthanc"]:
                if name.startswith("noctis"):
                    count = int(name.removeprefix("noctis"))
                    own = work / name
                    own.mkdir()
                    target = stack.enter_context(noctis(own, count))
                    if len(worker_counts) > 1:
                        target.name = f"Noctis w={count}"
                    noctis_names.append(target.name)
                else:
                    target = stack.enter_context(FACTORIES[name](work))
                if target is None:
                    print("Orthanc is not installed: skipped")
                    continue
                targets[target.name] = target
                rates[target.name] = {}
                for associations in (1, 4):
                    best = max(
                        (
                            measured_send(target, runs[associations, r], associations)
                            for r in range(args.repeat)
                        ),
                        key=lambda send: send.rate,
                    )
                    rates[target.name][associations] = best.rate
                    load = os.getloadavg()[0]
                    print(
                        f"{target.name:18s} {associations} association(s): {best.rate:7.1f} img/s"
                        f"   {best.cpu_text()}   (load average {load:.2f})",
                        flush=True,
                    )
            print()
            for associations in (1, 4):
                for ours in noctis_names:
                    line = [f"{associations} assoc:"]
                    for name in ("bare pynetdicom", "Orthanc"):
                        if name in rates:
                            ratio = rates[ours][associations] / rates[name][associations]
                            line.append(f"{ours}/{name} = {ratio:.2f}x")
                    print("  ".join(line))
            print()
            studies = work / "studies"
            files = []
            for index in range(args.studies):
                one = write_series(studies / f"{index:04d}", 1, 16)
                files.extend(sorted(one.iterdir()))
            big = runs[1, 0][0]
            from pydicom import dcmread

            header = dcmread(big, stop_before_pixels=True)
            series_path = (
                f"/studies/{header.StudyInstanceUID}/series/{header.SeriesInstanceUID}/instances"
            )
            for name in (noctis_names[0], "Orthanc"):
                target = targets.get(name)
                if target is None:
                    continue
                storescu(target.port, target.called, files, 4)
                # Let event subscribers (upload room, workflow intake) finish with the load, so
                # the timings measure searching rather than the tail of ingest.
                time.sleep(SETTLE_S)
                cold, warm, found = timed_ms(target, "/studies?PatientName=*&limit=1000")
                print(
                    f"{name:12s} QIDO {found} studies (wildcard):  first {cold:7.1f} ms  "
                    f"then median {warm:7.1f} ms"
                )
                cold, warm, listed = timed_ms(target, series_path)
                print(
                    f"{name:12s} QIDO {listed} instances of a series: first {cold:7.1f} ms  "
                    f"then median {warm:7.1f} ms"
                )


if __name__ == "__main__":
    main()

"""The ``noctis`` command as an operator uses it: serve on the embedded store, manage users."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.store.embedded import free_port
from tests.conftest import TEST_PASSWORD

NOCTIS = [sys.executable, "-m", "server.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOCTIS_")}
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOCTIS, *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    return _open(request)


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _open(urllib.request.Request(url, headers=headers))


def _open(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_user_commands_against_a_store(store_url: str) -> None:
    env = _env(NOCTIS_MONGO_URL=store_url, NOCTIS_MONGO_DB=f"cli{os.getpid()}")
    added = _run(
        [
            "user",
            "add",
            "alice",
            "--role",
            "radiologist",
            "--facility",
            "north",
            "--password-stdin",
        ],
        env,
        stdin=TEST_PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "created alice (radiologist, facility north)" in added.stdout
    weak = _run(["user", "add", "bob", "--role", "admin", "--password-stdin"], env, "short\n")
    assert weak.returncode == 1
    assert "at least 12 characters" in weak.stderr
    duplicate = _run(
        ["user", "add", "alice", "--role", "admin", "--password-stdin"], env, TEST_PASSWORD + "\n"
    )
    assert duplicate.returncode == 1
    assert "taken" in duplicate.stderr
    listed = _run(["user", "list"], env)
    assert listed.stdout.splitlines() == ["alice\tradiologist\tnorth\tactive"]
    disabled = _run(["user", "disable", "alice"], env)
    assert disabled.returncode == 0
    assert _run(["user", "list"], env).stdout.splitlines() == [
        "alice\tradiologist\tnorth\tdisabled"
    ]


def test_bad_setting_fails_with_a_clear_message() -> None:
    result = _run(["user", "list"], _env(NOCTIS_HTTP_PORT="eighty"))
    assert result.returncode == 2
    assert "NOCTIS_HTTP_PORT" in result.stderr


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    result = _run(
        ["serve", "--port", str(free_port())],
        _env(NOCTIS_ENV="production", NOCTIS_DATA_DIR=str(tmp_path)),
    )
    assert result.returncode == 2
    assert "NOCTIS_SECRET_KEY" in result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str, Path]]:
    port = free_port()
    env = _env(NOCTIS_DATA_DIR=str(tmp_path), NOCTIS_DICOM_ENABLED="false")
    process = subprocess.Popen(
        [*NOCTIS, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        password = ""
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            match = re.search(r"password: (\S+)", line)
            if match:
                password = match.group(1)
            if "is serving on" in line or time.monotonic() > deadline:
                break
        assert password, "the first start did not print an admin password"
        yield process, f"http://127.0.0.1:{port}", password, tmp_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_serve_first_start_admin_login_and_clean_shutdown(
    served: tuple[subprocess.Popen[str], str, str, Path],
) -> None:
    process, base, password, data_dir = served
    status, tokens = _post(f"{base}/api/auth/login", {"username": "admin", "password": password})
    assert status == 200
    status, me = _get(f"{base}/api/me", tokens["access_token"])
    assert (status, me["role"]) == (200, "admin")
    assert _get(f"{base}/health/ready")[0] == 200

    url_file = data_dir / "db" / "store.url"
    store_pid = int(url_file.read_text().split()[0])
    added = _run(
        ["user", "add", "carol", "--role", "technician", "--password-stdin"],
        _env(NOCTIS_DATA_DIR=str(data_dir)),
        TEST_PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    status, _ = _post(f"{base}/api/auth/login", {"username": "carol", "password": TEST_PASSWORD})
    assert status == 200

    process.send_signal(signal.SIGINT)
    exit_code = process.wait(30)
    assert exit_code == 0, f"noctis serve exited with {exit_code} after SIGINT"
    assert _exits_within(store_pid, 10.0), "the embedded store outlived the server"
    assert not url_file.exists()


def _exits_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False

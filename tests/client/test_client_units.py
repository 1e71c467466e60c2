"""Runs the client's own checks (tsc and vitest) as part of the Python suite, so `make test`
fails when the client's logic breaks or its generated protocol types drift from the catalog."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.programs import require_program

CLIENT = Path(__file__).resolve().parents[2] / "client"
TIMEOUT_S = 300


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = require_program("npm")
    if not (CLIENT / "node_modules").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True, timeout=TIMEOUT_S
        )
    return subprocess.run(
        [npm, *args], cwd=CLIENT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def test_typescript_compiles() -> None:
    result = _npm("run", "--silent", "typecheck")
    assert result.returncode == 0, result.stdout + result.stderr


def test_vitest_suite_passes() -> None:
    result = _npm("test", "--silent")
    assert result.returncode == 0, result.stdout + result.stderr

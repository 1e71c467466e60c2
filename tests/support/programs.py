"""Finding the system programs some tests talk to (redis-server, dcmtk, chromium).

``make test`` installs them when it can. A test that needs a missing one skips on a developer's
machine, but fails under CI (``CI=true``), where a skip would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (run scripts/install-system-deps)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

"""Imports flow one way; this test is the fence (STYLE.md, habit 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package prefix -> modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "shared": ("server",),
    "server/render": ("aiohttp", "socketio", "engineio", "server.store", "server.rooms", "pymongo"),
    "server/dicom": ("server.rooms", "server.workflow"),
    "server/workflow": ("server.rooms",),
    "server/store": ("server.rooms", "server.dicom", "server.workflow", "server.render"),
    "server/auth": ("server.rooms", "server.dicom", "server.workflow", "server.render"),
    "server/hub.py": ("server.",),
}
# The render *service* (pool, caches) may use asyncio but sits beside the pure pipeline; the
# pure pipeline's rule above still applies to it: no transport, no store.


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(prefix: str) -> list[Path]:
    target = ROOT / prefix
    if target.is_file():
        return [target]
    return sorted(target.rglob("*.py")) if target.exists() else []


@pytest.mark.parametrize("prefix", sorted(FORBIDDEN))
def test_layer_boundaries(prefix: str) -> None:
    offenders = []
    for path in _files(prefix):
        for name in _imports(path):
            for banned in FORBIDDEN[prefix]:
                if name == banned.rstrip(".") or name.startswith(banned.rstrip(".") + "."):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_fence_covers_real_files() -> None:
    """A renamed folder must not silently empty the fence."""
    assert _files("shared")
    assert _files("server/auth")
    assert _files("server/store")

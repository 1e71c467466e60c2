"""The workflow's import fences: it never imports rooms/, and its cores import no transport."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "server" / "workflow"
# The thin edges and the wiring may know aiohttp; everything else is a core.
EDGES = {"routes.py", "report_routes.py", "ai_routes.py", "setup.py", "service.py"}
TRANSPORT = ("aiohttp", "socketio", "engineio", "server.rooms", "server.http.body")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


MODULES = sorted(ROOT.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_fences(path: Path) -> None:
    found = imports(path)
    assert not [n for n in found if n.startswith("server.rooms")], "workflow must not import rooms"
    if path.name not in EDGES:
        bad = [n for n in found if n.startswith(TRANSPORT)]
        assert not bad, f"{path.name} is a core but imports {bad}"

"""The room cores import no transport: only the adapters and the wiring touch socketio/aiohttp."""

from __future__ import annotations

import ast
from pathlib import Path

ROOMS = Path(__file__).resolve().parents[2] / "server" / "rooms"
EDGE = {
    "socket_channel.py",
    "dispatch.py",
    "socket_server.py",
    "handlers.py",
    "setup.py",
    "uploads.py",
    "workflow_events.py",
}
TRANSPORT = {"socketio", "engineio", "aiohttp"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            if node.module.startswith("server.rooms."):
                names.add(node.module)
    return names


def test_room_cores_import_no_transport() -> None:
    cores = [p for p in ROOMS.glob("*.py") if p.name not in EDGE and p.name != "__init__.py"]
    assert cores
    for path in cores:
        imported = _imports(path)
        assert not imported & TRANSPORT, f"{path.name} imports {imported & TRANSPORT}"
        edge = {f"server.rooms.{name[:-3]}" for name in EDGE}
        assert not imported & edge, f"{path.name} imports the Socket.IO edge"

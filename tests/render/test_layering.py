"""The pipeline and the service import no transport, store or HTTP edge (the routes live in
`server/http/render_routes.py`)."""

import ast
from pathlib import Path

import server.render

FORBIDDEN = ("aiohttp", "socketio", "engineio", "pymongo", "server.store", "server.http")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_render_core_imports_no_transport_or_store() -> None:
    folder = Path(server.render.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for name in imported_modules(path):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"

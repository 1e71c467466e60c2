"""A Noctis server for the rooms load test: the real app, plus a synthetic slice renderer.

The render service lives on another branch; this launcher wires the tests' OpenCV slice
renderer (real JPEG encoding of a 512x512 slice, so frames cost real CPU) behind the rooms'
``Renderer`` protocol, and adds one read-only route with the frame relay's counters and the
store commands this server has sent (by command name): store round trips per edit are judged by
count, which a busy machine does not distort.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from aiohttp import web
from pymongo import monitoring

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server.app import AppOptions, build_app
from server.config import ensure_secret_key, load_settings
from server.eventloop import new_event_loop
from server.rooms.setup import ROOM_RENDERER, ROOMS
from server.runtime import tune_garbage_collector
from tests.rooms.support import SliceRenderer


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.started_by_name: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.started_by_name[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


COMMANDS = CommandCounter()


async def stats(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    frames = rooms.frames.stats
    return web.json_response(
        {
            "renders": frames.renders,
            "shared": frames.shared,
            "final_renders": frames.final_renders,
            "superseded": frames.superseded,
            "sent": frames.sent,
            "skipped_slow": frames.skipped_slow,
            "presence_coalesced": rooms.presence.dropped,
            "store_commands": dict(COMMANDS.started_by_name),
            "lost_claims": rooms.log.lost_claims,
        }
    )


def main() -> None:
    settings = ensure_secret_key(load_settings())
    monitoring.register(COMMANDS)  # before the app builds its store client
    app = build_app(settings, AppOptions(bootstrap_admin=False))
    app[ROOM_RENDERER] = SliceRenderer()
    app.router.add_get("/bench/stats", stats)
    tune_garbage_collector()  # the event loop and collector as `noctis serve` runs them
    web.run_app(
        app,
        host="127.0.0.1",
        port=settings.http_port,
        print=None,
        access_log=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()

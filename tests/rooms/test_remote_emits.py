"""The Redis manager tells the rooms what other nodes broadcast, over a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio

from server.rooms.socket_server import NodesRedisManager
from tests.support.servers import redis_server

WAIT_S = 10
PROBE = {"seq": 0}


async def after_probes(queue: asyncio.Queue[Any]) -> Any:
    """The next payload that is not one of the probes sent while Redis subscriptions started."""
    while (payload := await asyncio.wait_for(queue.get(), WAIT_S)) == PROBE:
        continue
    return payload


async def test_listeners_hear_the_other_nodes_emits_of_their_event_only() -> None:
    with redis_server() as url:
        one, two = NodesRedisManager(url), NodesRedisManager(url)
        servers = [socketio.AsyncServer(async_mode="aiohttp", client_manager=m) for m in (one, two)]
        heard: dict[str, asyncio.Queue[Any]] = {"one": asyncio.Queue(), "two": asyncio.Queue()}
        one.on_remote("room.op", heard["one"].put_nowait)
        two.on_remote("room.op", heard["two"].put_nowait)
        for manager in (one, two):
            manager.initialize()
        try:
            # The pub/sub listeners subscribe in the background: emit until one gets across.
            async def first_across() -> Any:
                while True:
                    await servers[0].emit("room.op", PROBE, to="study:x")
                    try:
                        return await asyncio.wait_for(heard["two"].get(), 0.2)
                    except TimeoutError:
                        continue

            assert await asyncio.wait_for(first_across(), WAIT_S) == PROBE
            await servers[0].emit("room.presence", {"seq": 99}, to="study:x")
            await servers[0].emit("room.op", {"seq": 1, "study_uid": "x"}, to="study:x")
            assert await after_probes(heard["two"]) == {"seq": 1, "study_uid": "x"}
            await servers[1].emit("room.op", {"seq": 2}, to="study:x")
            assert await after_probes(heard["one"]) == {"seq": 2}
            # A node never hears its own emits as remote ones: two heard none of its seq 2.
            await servers[0].emit("room.op", {"seq": 3}, to="study:x")
            assert await after_probes(heard["two"]) == {"seq": 3}
            assert heard["one"].empty()
        finally:
            for manager in (one, two):
                manager.thread.cancel()
                await asyncio.gather(manager.thread, return_exceptions=True)
                await manager.pubsub.aclose()
                await manager.redis.aclose()

"""Byte-bounded LRU and single flight on their own."""

import asyncio

import pytest

from server.render.cache import ByteLru, SingleFlight


def test_lru_evicts_least_recently_used_by_bytes() -> None:
    cache = ByteLru[str, str](100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"
    cache.put("c", "C", 40)
    assert list(cache) == ["a", "c"]
    assert cache.nbytes == 80
    cache.put("huge", "H", 101)
    assert "huge" not in cache
    cache.put("a", "A2", 10)
    assert (cache.get("a"), cache.nbytes) == ("A2", 50)


async def test_single_flight_shares_results_and_errors() -> None:
    flight = SingleFlight[str, int]()
    gate = asyncio.Event()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 7

    waiters = [asyncio.create_task(flight.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    gate.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == [7, 7, 7, 7]
    assert calls == 1
    assert not flight.running("k")

    async def fail() -> int:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await flight.run("x", fail)

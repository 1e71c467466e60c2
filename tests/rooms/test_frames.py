"""Frames: latest wins per viewer, identical renders shared, slow connections get fewer."""

from __future__ import annotations

import asyncio
from typing import Any

from server.rooms.channel import MemoryChannel
from server.rooms.frames import ACK_EVERY, MAX_UNCONFIRMED, FrameRelay, FrameRequest, NoRenderer
from shared.protocol import catalog
from tests.rooms.support import STUDY, SliceRenderer

VIEW = {"instance_uid": "1.2.3.4", "frame": 0, "canvas": [128, 128]}


def view(frame: int) -> dict[str, object]:
    return {**VIEW, "frame": frame}


async def _settle(relay: FrameRelay) -> None:
    while relay._tasks:
        await asyncio.gather(*list(relay._tasks))


async def test_followers_share_one_render_and_latest_wins() -> None:
    gate = asyncio.Event()
    renderer = SliceRenderer(gate)
    channel = MemoryChannel()
    relay = FrameRelay(renderer, channel, lambda sid: 0, settle_s=None)
    relay.request("presenter", FrameRequest.from_viewport(STUDY, view(0)), view(0))
    await asyncio.sleep(0)  # frame 0 is now rendering (held at the gate)
    for frame in range(1, 5):  # the presenter scrolls on meanwhile
        relay.request("presenter", FrameRequest.from_viewport(STUDY, view(frame)), view(frame))
    for n in range(20):
        relay.request(f"f{n}", FrameRequest.from_viewport(STUDY, view(4)), view(4))
    await asyncio.sleep(0)
    gate.set()
    await _settle(relay)
    got = channel.received("presenter", "frame")
    assert [meta["frame"] for meta, _ in got] == [0, 4]  # 1-3 were superseded
    assert renderer.renders == 2
    assert relay.stats.superseded == 3
    for n in range(20):
        ((meta, data),) = channel.received(f"f{n}", "frame")
        catalog().validate_outbound("frame", meta)
        assert data[:2] == b"\xff\xd8"
        assert meta["key"] == got[-1][0]["key"]


async def test_a_backed_up_connection_gets_the_newest_frame_only() -> None:
    backlog = {"slow": 100}
    channel = MemoryChannel()
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: backlog.get(sid, 0), settle_s=None)
    relay.request("slow", FrameRequest.from_viewport(STUDY, view(0)), view(0))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if relay.stats.renders:
            break
    for frame in range(1, 6):
        relay.request("slow", FrameRequest.from_viewport(STUDY, view(frame)), view(frame))
        await asyncio.sleep(0.02)
    backlog["slow"] = 0
    await _settle(relay)
    frames = [meta["frame"] for meta, _ in channel.received("slow", "frame")]
    assert frames == [5]
    assert relay.stats.skipped_slow + relay.stats.superseded == 5


async def test_without_a_render_service_viewers_get_an_error() -> None:
    channel = MemoryChannel()
    relay = FrameRelay(NoRenderer(), channel, lambda sid: 0, settle_s=None)
    relay.request("v", FrameRequest.from_viewport(STUDY, VIEW), VIEW)
    await _settle(relay)
    (error,) = channel.received("v", "frame.error")
    catalog().validate_outbound("frame.error", error)
    assert error["error"]["code"] == "service_unavailable"


async def test_a_viewer_that_does_not_acknowledge_is_counted() -> None:
    channel = MemoryChannel(unresponsive={"v"})
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: 0, settle_s=None)
    relay.request("v", FrameRequest.from_viewport(STUDY, VIEW), VIEW)
    await _settle(relay)
    assert relay.stats.unacknowledged == 1


async def test_followers_get_each_frame_in_one_emit_and_acknowledge_every_nth() -> None:
    channel = MemoryChannel()
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: 0, settle_s=None)
    followers = [f"f{n}" for n in range(20)]
    for frame in range(2 * ACK_EVERY):
        shown = view(frame)  # as the presenter's update: one viewport for all its followers
        for sid in followers:
            relay.request(sid, FrameRequest.from_viewport(STUDY, shown), shown)
        await _settle(relay)
    for sid in followers:
        got = [s for s in channel.sent if s.sid == sid and s.event == "frame"]
        assert [s.payload[0]["frame"] for s in got] == list(range(2 * ACK_EVERY))
        assert [n for n, s in enumerate(got) if s.ack] == [0, ACK_EVERY]
    # frames that ask for no acknowledgement went out as one emit per frame, for all followers
    assert relay.stats.group_emits == 2 * (ACK_EVERY - 1)


class StalledChannel(MemoryChannel):
    """A client whose acknowledgements do not come until ``answer`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def call_local(self, event: str, *args: Any, sid: str, wait_s: float) -> bool:
        await super().call_local(event, *args, sid=sid, wait_s=wait_s)
        await self.answer.wait()
        return True


async def test_a_viewer_that_stops_acknowledging_gets_a_bounded_window_then_the_latest() -> None:
    channel = StalledChannel()
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: 0, settle_s=None)
    for frame in range(3 * MAX_UNCONFIRMED):
        relay.request("v", FrameRequest.from_viewport(STUDY, view(frame)), view(frame))
        for _ in range(5):
            await asyncio.sleep(0.005)
    assert len(channel.received("v", "frame")) == MAX_UNCONFIRMED
    channel.answer.set()
    await _settle(relay)
    frames = [meta["frame"] for meta, _ in channel.received("v", "frame")]
    assert frames == [*range(MAX_UNCONFIRMED), 3 * MAX_UNCONFIRMED - 1]

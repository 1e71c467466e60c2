"""Interactive frames while a viewport moves, then one final-quality frame once it rests."""

from __future__ import annotations

import asyncio
from typing import Any

from server.appkeys import STORE
from server.rooms.channel import MemoryChannel
from server.rooms.frames import SETTLE_S as FRAME_SETTLE_S
from server.rooms.frames import FrameRelay, FrameRequest
from server.rooms.setup import ROOMS
from shared.protocol import catalog
from tests.conftest import Noctis
from tests.rooms.clients import Inbox, call
from tests.rooms.support import STUDY, SliceRenderer
from tests.support.sockets import socket_client

SETTLE_S = 0.05


def view(frame: int) -> dict[str, Any]:
    return {"instance_uid": "1.2.3.4", "frame": frame, "canvas": [128, 128]}


async def _quiet(relay: FrameRelay, channel: MemoryChannel, sids: list[str]) -> None:
    """Wait until every lane has settled and its last frame went out."""
    for _ in range(200):
        await asyncio.sleep(SETTLE_S)
        lanes = [relay._lanes.get(sid) for sid in sids]
        if not relay._tasks and all(lane is None or lane.settle is None for lane in lanes):
            return
    raise AssertionError("the relay did not settle")


async def test_a_scroll_gets_interactive_frames_then_one_final_frame_of_the_last_view() -> None:
    channel = MemoryChannel()
    renderer = SliceRenderer()
    relay = FrameRelay(renderer, channel, lambda sid: 0, settle_s=SETTLE_S)
    for frame in range(5):
        relay.request("v", FrameRequest.from_viewport(STUDY, view(frame)), view(frame))
        await asyncio.sleep(SETTLE_S / 5)
    await _quiet(relay, channel, ["v"])
    got = channel.received("v", "frame")
    *moving, (final, final_data) = got
    assert {meta["quality"] for meta, _ in moving} == {"interactive"}
    assert (final["quality"], final["frame"]) == ("final", 4)
    catalog().validate_outbound("frame", final)
    interactive_4 = [(meta, data) for meta, data in moving if meta["frame"] == 4]
    assert interactive_4, "the last view was shown at interactive quality first"
    # Same view, other pixels: a key of its own, and the final JPEG is the larger one.
    assert final["key"] != interactive_4[0][0]["key"]
    assert len(final_data) > len(interactive_4[0][1])
    assert relay.stats.final_renders == 1


async def test_a_new_viewport_before_the_view_settles_puts_the_final_frame_off() -> None:
    channel = MemoryChannel()
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: 0, settle_s=SETTLE_S * 4)
    relay.request("v", FrameRequest.from_viewport(STUDY, view(0)), view(0))
    await asyncio.sleep(SETTLE_S)
    relay.request("v", FrameRequest.from_viewport(STUDY, view(1)), view(1))
    await _quiet(relay, channel, ["v"])
    finals = [
        meta["frame"] for meta, _ in channel.received("v", "frame") if meta["quality"] == "final"
    ]
    assert finals == [1]


async def test_followers_settle_together_on_one_final_render() -> None:
    channel = MemoryChannel()
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: 0, settle_s=SETTLE_S)
    sids = ["presenter", *(f"f{n}" for n in range(10))]
    for frame in range(3):
        for sid in sids:
            relay.request(sid, FrameRequest.from_viewport(STUDY, view(frame)), view(frame))
        await asyncio.sleep(SETTLE_S / 5)
    await _quiet(relay, channel, sids)
    for sid in sids:
        finals = [meta for meta, _ in channel.received(sid, "frame") if meta["quality"] == "final"]
        assert [meta["frame"] for meta in finals] == [2]
    assert relay.stats.final_renders == 1


async def test_a_viewer_that_leaves_gets_no_final_frame() -> None:
    channel = MemoryChannel()
    relay = FrameRelay(SliceRenderer(), channel, lambda sid: 0, settle_s=SETTLE_S)
    relay.request("v", FrameRequest.from_viewport(STUDY, view(0)), view(0))
    relay.forget("v")
    await asyncio.sleep(SETTLE_S * 3)
    assert all(meta["quality"] == "interactive" for meta, _ in channel.received("v", "frame"))
    assert relay.stats.final_renders == 0


async def test_over_socketio_a_follower_sees_interactive_frames_then_the_final_one(
    noctis: Noctis,
) -> None:
    await noctis.app[STORE]["dicom_studies"].insert_one({"_id": STUDY, "facility": "main"})
    noctis.app[ROOMS].frames.renderer = SliceRenderer()
    alice, bob = await noctis.token_for("alice"), await noctis.token_for("bob")
    async with socket_client(noctis.client, alice) as a, socket_client(noctis.client, bob) as b:
        follower = Inbox(b, "frame")
        await call(a, "room.join", {"study_uid": STUDY})
        await call(b, "room.join", {"study_uid": STUDY})
        assert (await call(a, "follow.present", {"study_uid": STUDY}))["ok"]
        for frame in range(6):
            await a.emit("presence.update", {"study_uid": STUDY, "viewport": view(frame)})
            await asyncio.sleep(0.02)
        seen = []
        while not seen or seen[-1][0]["quality"] != "final":
            seen.append(await follower.next("frame"))
        *moving, (final, data) = seen
        catalog().validate_outbound("frame", final)
        assert final["frame"] == 5
        assert data[:2] == b"\xff\xd8"
        assert moving
        assert {meta["quality"] for meta, _ in moving} == {"interactive"}
        await asyncio.sleep(FRAME_SETTLE_S * 2)
        assert follower.drain("frame") == []  # one final frame, not one per tick

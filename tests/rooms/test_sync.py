"""Synchronised scrolling of two series: matched by position along the normal, not by index."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.appkeys import STORE
from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.rooms.slices import slices_of
from server.store.database import Store
from shared.protocol import catalog
from tests.conftest import Noctis
from tests.rooms.clients import Inbox, call
from tests.rooms.support import STUDY, add_study, make_rooms, make_user
from tests.support.sockets import socket_client

CURRENT = "1.2.826.0.1.3680043.10.500.1"
PRIOR = "1.2.826.0.1.3680043.10.500.2"
AXIAL = [1, 0, 0, 0, 1, 0]


def _header(z: float, orientation: list[float] = AXIAL) -> dict[str, Any]:
    return {
        "00200032": {"vr": "DS", "Value": [-120.0, -110.0, z]},
        "00200037": {"vr": "DS", "Value": orientation},
    }


async def add_series(store: Store) -> None:
    """Current: 2.5 mm slices from z=0 up. Prior: 3 mm slices from z=-1, stored and numbered
    from the top down, so a slice's index says nothing about where it is."""
    docs = [{"_id": f"{CURRENT}.{n}", "series_uid": CURRENT, "z": 2.5 * n} for n in range(20)] + [
        {"_id": f"{PRIOR}.{n}", "series_uid": PRIOR, "z": 53.0 - 3 * n} for n in range(19)
    ]
    await store["dicom_metadata"].insert_many(
        [
            {
                "_id": doc["_id"],
                "series_uid": doc["series_uid"],
                "study_uid": STUDY,
                "json": json.dumps(_header(doc["z"])),
            }
            for doc in docs
        ]
    )


def view(series: str, n: int) -> dict[str, Any]:
    return {"series_uid": series, "instance_uid": f"{series}.{n}", "frame": 0, "canvas": [64, 64]}


async def test_scrolling_one_linked_series_names_the_nearest_slice_of_the_other(
    store: Store,
) -> None:
    await add_study(store)
    await add_series(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)
    linked = await rooms.sync_link(alice, "a", STUDY, [CURRENT, PRIOR])
    op = channel.received("b", "room.op")[-1]
    catalog().validate_outbound("room.op", op)
    assert (op["type"], op["seq"], op["data"]) == ("sync.linked", linked["seq"], linked["link"])
    snapshot = await rooms.snapshot(STUDY)
    assert snapshot["sync_links"] == [linked["link"]]

    # Current slice 6 is at z=15.0; the prior's slices are at 53, 50, ..., so z=14 is slice 13.
    await rooms.presence_update(
        "a", {"study_uid": STUDY, "viewport": view(CURRENT, 6), "render": False}
    )
    (scroll,) = channel.received("a", "sync.scroll")
    catalog().validate_outbound("sync.scroll", scroll)
    assert scroll["to"] == {"series_uid": PRIOR, "instance_uid": f"{PRIOR}.13", "frame": 0}
    assert scroll["distance_mm"] == pytest.approx(1.0)
    assert channel.received("b", "sync.scroll") == []  # only the member who scrolled

    # And the other way: prior slice 3 (z=44) is nearest current slice 18 (z=45, 1 mm away;
    # z=42.5 is 1.5 mm away).
    await rooms.presence_update(
        "a", {"study_uid": STUDY, "viewport": view(PRIOR, 3), "render": False}
    )
    assert channel.received("a", "sync.scroll")[-1]["to"]["instance_uid"] == f"{CURRENT}.18"

    await rooms.sync_unlink(bob, "b", STUDY, linked["link"]["id"])
    assert channel.received("a", "room.op")[-1]["type"] == "sync.unlinked"
    await rooms.presence_update(
        "a", {"study_uid": STUDY, "viewport": view(CURRENT, 2), "render": False}
    )
    assert len(channel.received("a", "sync.scroll")) == 2
    assert (await rooms.snapshot(STUDY))["sync_links"] == []


async def test_linking_a_series_without_positions_or_twice_is_refused(store: Store) -> None:
    await add_study(store)
    await add_series(store)
    rooms = make_rooms(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "a", STUDY, None)
    with pytest.raises(ApiError) as missing:
        await rooms.sync_link(alice, "a", STUDY, [CURRENT, "1.2.3.999"])
    assert missing.value.code == "not_found"
    await rooms.sync_link(alice, "a", STUDY, [CURRENT, PRIOR])
    with pytest.raises(ApiError) as twice:
        await rooms.sync_link(alice, "a", STUDY, [PRIOR, CURRENT])
    assert twice.value.code == "conflict"
    with pytest.raises(ApiError) as stranger:
        await rooms.sync_link(alice, "not-joined", STUDY, [CURRENT, PRIOR])
    assert stranger.value.code == "forbidden"


def test_enhanced_multiframe_positions_come_per_frame() -> None:
    header = {
        "52009229": {"vr": "SQ", "Value": [{"00209116": {"vr": "SQ", "Value": [_header(0)]}}]},
        "52009230": {
            "vr": "SQ",
            "Value": [{"00209113": {"vr": "SQ", "Value": [_header(z)]}} for z in (0, 1.5, 3)],
        },
    }
    slices = slices_of("1.2.3", header)
    assert [(s.frame, s.position[2], s.normal) for s in slices] == [
        (0, 0.0, (0.0, 0.0, 1.0)),
        (1, 1.5, (0.0, 0.0, 1.0)),
        (2, 3.0, (0.0, 0.0, 1.0)),
    ]
    assert slices_of("1.2.4", {"00200032": {"vr": "DS", "Value": [1, 2]}}) == []


async def test_over_socketio_a_link_is_room_state_and_scrolls_answer_the_scroller(
    noctis: Noctis,
) -> None:
    store = noctis.app[STORE]
    await add_study(store)
    await add_series(store)
    alice, bob = await noctis.token_for("alice"), await noctis.token_for("bob")
    async with socket_client(noctis.client, alice) as a, socket_client(noctis.client, bob) as b:
        inbox_a, inbox_b = Inbox(a, "sync.scroll"), Inbox(b, "room.op")
        await call(a, "room.join", {"study_uid": STUDY})
        await call(b, "room.join", {"study_uid": STUDY})
        linked = await call(a, "sync.link", {"study_uid": STUDY, "series": [CURRENT, PRIOR]})
        catalog().validate_ack("sync.link", linked)
        op = await inbox_b.until("room.op", lambda op: op["type"] == "sync.linked")
        assert op["data"]["series"] == [CURRENT, PRIOR]
        joined = await call(b, "room.join", {"study_uid": STUDY})
        assert joined["snapshot"]["sync_links"] == [linked["link"]]
        await a.emit(
            "presence.update", {"study_uid": STUDY, "viewport": view(CURRENT, 6), "render": False}
        )
        scroll = await inbox_a.next("sync.scroll")
        assert scroll["to"]["instance_uid"] == f"{PRIOR}.13"
        bad = await call(a, "sync.link", {"study_uid": STUDY, "series": [CURRENT, CURRENT]})
        assert bad["error"]["code"] == "validation_failed"
        gone = await call(a, "sync.unlink", {"study_uid": STUDY, "id": "0" * 32})
        assert gone["error"]["code"] == "not_found"

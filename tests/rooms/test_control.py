"""Taking control: a follower asks, only the presenter answers, stale and duplicate requests."""

from __future__ import annotations

from typing import Any

import pytest

from server.appkeys import STORE
from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.store.database import Store
from shared.protocol import catalog
from tests.conftest import Noctis
from tests.rooms.clients import Inbox, call
from tests.rooms.support import STUDY, add_study, make_rooms, make_user
from tests.support.sockets import socket_client

VIEW = {"instance_uid": "1.2.3.4", "frame": 3, "canvas": [256, 256]}


async def test_requests_are_answered_by_the_presenter_only_and_go_stale(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob, carol = [await make_user(store, name) for name in ("alice", "bob", "carol")]
    for principal, sid in ((alice, "a"), (bob, "b"), (carol, "c")):
        await rooms.join(principal, sid, STUDY, None)
        await channel.enter(sid, f"user:{principal.user_id}")

    with pytest.raises(ApiError) as nobody:
        await rooms.request_control("b", STUDY)
    assert nobody.value.code == "conflict"
    await rooms.present(alice, "a", STUDY)
    with pytest.raises(ApiError) as own:
        await rooms.request_control("a", STUDY)
    assert own.value.code == "conflict"

    first = (await rooms.request_control("b", STUDY))["request"]
    catalog().validate_ack("follow.request", {"ok": True, "request": first})
    assert (first["from"]["username"], first["to"]["username"]) == ("bob", "alice")
    again = (await rooms.request_control("b", STUDY))["request"]
    assert again["id"] == first["id"]  # a duplicate answers the open request
    reminders = channel.received("a", "follow.requested")
    assert [r["id"] for r in reminders] == [first["id"], first["id"]]
    catalog().validate_outbound("follow.requested", reminders[0])
    assert channel.received("c", "follow.requested") == []

    with pytest.raises(ApiError) as not_presenter:
        await rooms.answer_control("c", STUDY, first["id"], True)
    assert not_presenter.value.code == "forbidden"
    assert await rooms.answer_control("a", STUDY, first["id"], False) == {}
    (declined,) = channel.received("b", "follow.answered")
    catalog().validate_outbound("follow.answered", declined)
    assert (declined["granted"], declined["by"]["username"]) == (False, "alice")
    with pytest.raises(ApiError) as answered:
        await rooms.answer_control("a", STUDY, first["id"], True)
    assert answered.value.code == "stale_version"

    # Carol's request to Alice goes stale when Alice hands over to Bob.
    carols = (await rooms.request_control("c", STUDY))["request"]
    await rooms.handover(alice, "a", STUDY, bob.user_id)
    with pytest.raises(ApiError) as stale:
        await rooms.answer_control("b", STUDY, carols["id"], True)
    assert stale.value.code == "stale_version"
    assert (await rooms.snapshot(STUDY))["presenter"]["username"] == "bob"

    # A requester who left cannot be granted control.
    dans = (await rooms.request_control("a", STUDY))["request"]
    await rooms.leave("a", STUDY)
    with pytest.raises(ApiError) as gone:
        await rooms.answer_control("b", STUDY, dans["id"], True)
    assert gone.value.code == "not_found"
    assert (await rooms.snapshot(STUDY))["presenter"]["username"] == "bob"
    with pytest.raises(ApiError):
        await rooms.answer_control("b", STUDY, dans["id"], True)


async def test_a_granted_request_makes_the_requester_presenter_and_the_others_follow(
    noctis: Noctis,
) -> None:
    await noctis.app[STORE]["dicom_studies"].insert_one({"_id": STUDY, "facility": "main"})
    tokens = [await noctis.token_for(name) for name in ("alice", "bob", "carol")]
    async with (
        socket_client(noctis.client, tokens[0]) as a,
        socket_client(noctis.client, tokens[1]) as b,
        socket_client(noctis.client, tokens[2]) as c,
    ):
        inbox_a = Inbox(a, "follow.requested", "room.op", "follow.viewport")
        inbox_b = Inbox(b, "follow.answered", "room.op")
        inbox_c = Inbox(c, "follow.requested", "room.op", "follow.viewport", "room.presence")
        for sio in (a, b, c):
            await call(sio, "room.join", {"study_uid": STUDY})
        await call(a, "follow.present", {"study_uid": STUDY})

        asked = await call(b, "follow.request", {"study_uid": STUDY})
        catalog().validate_ack("follow.request", asked)
        request = await inbox_a.next("follow.requested")
        assert request == asked["request"]
        refused = await call(c, "follow.answer", {**_answer(request["id"]), "grant": True})
        assert refused["error"]["code"] == "forbidden"
        bad = await call(a, "follow.answer", {"study_uid": STUDY, "request_id": "nope"})
        assert bad["error"]["code"] == "validation_failed"

        await a.emit("follow.set", {"study_uid": STUDY, "following": False})
        await inbox_c.until("room.presence", lambda p: _following(p, "alice") is False)
        granted = await call(a, "follow.answer", {**_answer(request["id"]), "grant": True})
        catalog().validate_ack("follow.answer", granted)
        answer = await inbox_b.next("follow.answered")
        assert (answer["granted"], answer["request_id"]) == (True, request["id"])
        for inbox in (inbox_a, inbox_b, inbox_c):
            changed = await inbox.until(
                "room.op",
                lambda op: (
                    op["type"] == "presenter.changed"
                    and op["data"]["presenter"]["username"] == "bob"
                ),
            )
            assert changed["seq"] == granted["seq"]
        again = await call(a, "follow.answer", {**_answer(request["id"]), "grant": True})
        assert again["error"]["code"] == "forbidden"  # Alice no longer presents

        await inbox_c.until("room.presence", lambda p: _following(p, "alice") is True)

        # Bob leads now: his viewport reaches Alice (who follows him) and Carol.
        await b.emit("presence.update", {"study_uid": STUDY, "viewport": VIEW, "render": False})
        for inbox in (inbox_a, inbox_c):
            followed = await inbox.next("follow.viewport")
            assert (followed["presenter"]["username"], followed["viewport"]) == ("bob", VIEW)
        assert inbox_c.drain("follow.requested") == []


def _answer(request_id: str) -> dict[str, str]:
    return {"study_uid": STUDY, "request_id": request_id}


def _following(batch: dict[str, Any], username: str) -> bool | None:
    states = [m["following"] for m in batch["members"] if m["username"] == username]
    return states[-1] if states else None

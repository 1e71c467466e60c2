"""Annotations: shapes checked, values never guessed, optimistic concurrency, authorship, undo."""

from __future__ import annotations

from typing import Any

import pytest

from server.auth.roles import Role
from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.rooms.measure import Shape
from server.rooms.service import Rooms
from server.store.database import Store
from shared.protocol import catalog
from tests.rooms.support import STUDY, add_study, make_rooms, make_user


def shape(kind: str, points: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {
        "study_uid": STUDY,
        "kind": kind,
        "instance_uid": "1.2.3.4",
        "frame": 0,
        "points": points,
        **extra,
    }


async def _room(store: Store) -> tuple[Rooms, MemoryChannel]:
    await add_study(store)
    channel = MemoryChannel()
    return make_rooms(store, channel), channel


async def test_every_kind_is_stored_and_unmeasured_values_say_so(store: Store) -> None:
    rooms, _ = await _room(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "s1", STUDY, None)
    kinds = {
        "length": shape("length", [[0, 0], [3, 4]]),
        "angle": shape("angle", [[0, 0], [1, 1], [2, 0]]),
        "cobb": shape("cobb", [[0, 0], [1, 0], [0, 1], [1, 2]]),
        "ellipse": shape("ellipse", [[10, 10], [20, 15]]),
        "rectangle": shape("rectangle", [[10, 10], [20, 15]]),
        "polygon": shape("polygon", [[0, 0], [5, 0], [5, 5]]),
        "probe": shape("probe", [[7, 9]]),
        "arrow": shape("arrow", [[0, 0], [5, 5]]),
        "text": shape("text", [[1, 1]], text="<b>not markup</b>"),
        "key_image": shape("key_image", []),
    }
    for kind, payload in kinds.items():
        answer = {"ok": True, **await rooms.annotate(alice, "s1", "create", payload)}
        catalog().validate_ack("annotation.create", answer)
        measurement = answer["annotation"]["measurement"]
        if kind in {"arrow", "text", "key_image"}:
            assert measurement == {"status": "none"}
        else:
            assert measurement["status"] == "not_measured"
            assert "values" not in measurement
    stored = await rooms.annotations.for_study(STUDY)
    assert [a["kind"] for a in stored] == list(kinds)
    assert stored[8]["text"] == "<b>not markup</b>"


async def test_a_wired_measurer_values_are_stored(store: Store) -> None:
    rooms, _ = await _room(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "s1", STUDY, None)
    seen: list[Shape] = []

    class Ruler:
        async def measure(self, shape: Shape) -> dict[str, Any]:
            seen.append(shape)
            return {"status": "measured", "values": {"length": 5.0, "unit": "mm"}}

    rooms.annotations.measurer = Ruler()
    answer = await rooms.annotate(alice, "s1", "create", shape("length", [[0, 0], [3, 4]]))
    assert answer["annotation"]["measurement"]["values"] == {"length": 5.0, "unit": "mm"}
    assert seen[0].points == ((0.0, 0.0), (3.0, 4.0))


@pytest.mark.parametrize(
    ("kind", "points", "extra"),
    [
        ("length", [[0, 0]], {}),
        ("angle", [[0, 0], [1, 1]], {}),
        ("cobb", [[0, 0], [1, 1], [2, 2]], {}),
        ("polygon", [[0, 0], [1, 1]], {}),
        ("probe", [], {}),
        ("probe", [[0, 0], [1, 1]], {}),
        ("text", [[0, 0]], {}),
        ("key_image", [[0, 0]], {}),
    ],
)
async def test_wrong_shapes_are_refused_and_nothing_is_stored(
    store: Store, kind: str, points: list[list[float]], extra: dict[str, Any]
) -> None:
    rooms, _ = await _room(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "s1", STUDY, None)
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(alice, "s1", "create", shape(kind, points, **extra))
    assert caught.value.code == "validation_failed"
    assert await store["annotations"].count_documents({}) == 0
    assert await rooms.log.current(STUDY) == 0


async def test_stale_versions_are_refused_with_the_current_state(store: Store) -> None:
    rooms, channel = await _room(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "s1", STUDY, None)
    await rooms.join(alice, "s2", STUDY, None)
    created = (await rooms.annotate(alice, "s1", "create", shape("length", [[0, 0], [1, 1]])))[
        "annotation"
    ]
    first = await rooms.annotate(
        alice,
        "s1",
        "update",
        {"study_uid": STUDY, "id": created["id"], "version": 1, "points": [[0, 0], [2, 2]]},
    )
    assert first["annotation"]["version"] == 2
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(
            alice,
            "s2",
            "update",
            {"study_uid": STUDY, "id": created["id"], "version": 1, "points": [[9, 9], [8, 8]]},
        )
    assert caught.value.code == "stale_version"
    assert caught.value.details["current"]["points"] == [[0, 0], [2, 2]]
    assert caught.value.details["current"]["version"] == 2
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(
            alice, "s2", "delete", {"study_uid": STUDY, "id": created["id"], "version": 1}
        )
    assert caught.value.code == "stale_version"
    ops = channel.received("s1", "room.op")
    assert [op["type"] for op in ops] == ["annotation.created", "annotation.updated"]


async def test_only_the_author_or_an_admin_changes_an_annotation(store: Store) -> None:
    rooms, _ = await _room(store)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    admin = await make_user(store, "root", Role.ADMIN)
    doctor = await make_user(store, "dr.who", Role.REFERRING_PHYSICIAN)
    await rooms.access.invitations.invite(STUDY, doctor.user_id, alice)
    for principal, sid in ((alice, "a"), (bob, "b"), (admin, "r"), (doctor, "d")):
        await rooms.join(principal, sid, STUDY, None)
    created = (await rooms.annotate(alice, "a", "create", shape("arrow", [[0, 0], [1, 1]])))[
        "annotation"
    ]
    change = {"study_uid": STUDY, "id": created["id"], "version": 1, "label": "mine"}
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(bob, "b", "update", change)
    assert caught.value.code == "forbidden"
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(doctor, "d", "create", shape("arrow", [[0, 0], [1, 1]]))
    assert caught.value.code == "forbidden"
    updated = await rooms.annotate(admin, "r", "update", change)
    assert updated["annotation"]["label"] == "mine"
    assert updated["annotation"]["author"]["username"] == "alice"


async def test_undo_walks_back_the_callers_own_changes(store: Store) -> None:
    rooms, _ = await _room(store)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)
    created = (await rooms.annotate(alice, "a", "create", shape("length", [[0, 0], [1, 1]])))[
        "annotation"
    ]
    await rooms.annotate(
        alice,
        "a",
        "update",
        {"study_uid": STUDY, "id": created["id"], "version": 1, "points": [[5, 5], [6, 6]]},
    )
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(bob, "b", "undo", {"study_uid": STUDY})
    assert caught.value.code == "not_found"

    undone = await rooms.annotate(alice, "a", "undo", {"study_uid": STUDY})
    assert undone["annotation"]["points"] == [[0, 0], [1, 1]]
    assert undone["annotation"]["version"] == 3
    removed = await rooms.annotate(alice, "a", "undo", {"study_uid": STUDY})
    assert removed["annotation"]["deleted"] is True
    assert await rooms.annotations.for_study(STUDY) == []
    with pytest.raises(ApiError):
        await rooms.annotate(alice, "a", "undo", {"study_uid": STUDY})

    history = await rooms.annotations.history(STUDY, created["id"])
    assert [(h["action"], h["version"]) for h in history] == [
        ("create", 1),
        ("update", 2),
        ("undo", 3),
        ("undo", 4),
    ]
    assert history[1]["before"]["points"] == [[0, 0], [1, 1]]
    assert history[1]["after"]["points"] == [[5, 5], [6, 6]]


async def test_undo_refuses_when_someone_changed_it_since(store: Store) -> None:
    rooms, _ = await _room(store)
    alice = await make_user(store, "alice")
    admin = await make_user(store, "root", Role.ADMIN)
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(admin, "r", STUDY, None)
    created = (await rooms.annotate(alice, "a", "create", shape("arrow", [[0, 0], [1, 1]])))[
        "annotation"
    ]
    await rooms.annotate(
        admin, "r", "update", {"study_uid": STUDY, "id": created["id"], "version": 1, "label": "x"}
    )
    with pytest.raises(ApiError) as caught:
        await rooms.annotate(alice, "a", "undo", {"study_uid": STUDY})
    assert caught.value.code == "stale_version"
    assert len(await rooms.annotations.for_study(STUDY)) == 1


async def test_each_change_is_one_op_that_holds_its_history_entry(store: Store) -> None:
    """The history is read back from the room's op log: every change is the annotation write
    plus one op, the op's stored history entry never reaches a client, and the entries follow
    the ops' order."""
    rooms, channel = await _room(store)
    alice = await make_user(store, "alice")
    await rooms.join(alice, "a", STUDY, None)
    created = (await rooms.annotate(alice, "a", "create", shape("text", [[1, 1]], text="one")))[
        "annotation"
    ]
    moved = await rooms.annotate(
        alice,
        "a",
        "update",
        {"study_uid": STUDY, "id": created["id"], "version": 1, "points": [[2, 2]]},
    )
    relabelled = await rooms.annotate(
        alice, "a", "update", {"study_uid": STUDY, "id": created["id"], "version": 2, "label": "L"}
    )
    assert relabelled["annotation"] == {
        **moved["annotation"],
        "label": "L",
        "version": 3,
        "updated_at": relabelled["annotation"]["updated_at"],
    }
    assert await store["room_ops"].count_documents({}) == 3
    stored = [op async for op in store["room_ops"].find({}).sort("seq", 1)]
    assert [op["change"]["action"] for op in stored] == ["create", "update", "update"]
    assert stored[2]["change"]["before"]["label"] is None
    assert stored[2]["change"]["after"]["label"] == "L"
    sent = channel.received("a", "room.op")
    _, replayed = await rooms.log.since(STUDY, 0)
    assert replayed is not None
    for op in [*sent, *replayed]:
        assert "change" not in op
        assert "undone" not in op
        catalog().validate_outbound("room.op", op)
    assert [op["data"] for op in replayed] == [op["data"] for op in sent]
    history = await rooms.annotations.history(STUDY, created["id"])
    assert [(h["action"], h["version"], h["after"]["points"]) for h in history] == [
        ("create", 1, [[1, 1]]),
        ("update", 2, [[2, 2]]),
        ("update", 3, [[2, 2]]),
    ]
    assert [h["at"] for h in history] == [op["at"] for op in sent]


async def test_a_change_written_without_reading_first_still_checks_everything(
    store: Store,
) -> None:
    """Label changes and deletes go straight to one conditional write; when it matches nothing
    the answer still says why, and nothing was changed."""
    rooms, _ = await _room(store)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)
    created = (await rooms.annotate(alice, "a", "create", shape("arrow", [[0, 0], [1, 1]])))[
        "annotation"
    ]
    ident = created["id"]

    async def refused(principal: Any, sid: str, action: str, payload: dict[str, Any]) -> ApiError:
        with pytest.raises(ApiError) as caught:
            await rooms.annotate(principal, sid, action, {"study_uid": STUDY, **payload})
        return caught.value

    assert (await refused(bob, "b", "update", {"id": ident, "version": 1, "label": "x"})).code == (
        "forbidden"
    )
    assert (await refused(bob, "b", "delete", {"id": ident, "version": 1})).code == "forbidden"
    stale = await refused(alice, "a", "update", {"id": ident, "version": 7, "label": "x"})
    assert stale.code == "stale_version"
    assert stale.details["current"]["version"] == 1
    assert (
        await refused(alice, "a", "update", {"id": "nope", "version": 1, "label": "x"})
    ).code == ("not_found")
    deleted = await rooms.annotate(
        alice, "a", "delete", {"study_uid": STUDY, "id": ident, "version": 1}
    )
    assert deleted["annotation"]["deleted"] is True
    gone = await refused(alice, "a", "update", {"id": ident, "version": 2, "label": "x"})
    assert gone.code == "not_found"
    # Undo stores ``deleted`` through $set (read back as 0 by the embedded store): the
    # conditional write must still see the annotation as live.
    restored = await rooms.annotate(alice, "a", "undo", {"study_uid": STUDY})
    assert restored["annotation"]["deleted"] is False
    relabelled = await rooms.annotate(
        alice, "a", "update", {"study_uid": STUDY, "id": ident, "version": 3, "label": "back"}
    )
    assert relabelled["annotation"]["version"] == 4
    assert relabelled["annotation"]["deleted"] is False
    assert relabelled["annotation"]["label"] == "back"
    assert relabelled["annotation"]["points"] == [[0, 0], [1, 1]]
    # An emptied text on a text annotation needs its kind: refused, not written.
    text = (await rooms.annotate(alice, "a", "create", shape("text", [[1, 1]], text="t")))[
        "annotation"
    ]
    empty = await refused(alice, "a", "update", {"id": text["id"], "version": 1, "text": ""})
    assert empty.code == "validation_failed"
    stored = await store["annotations"].find_one({"_id": ident})
    assert stored is not None
    assert stored["version"] == 4
    history = await rooms.annotations.history(STUDY, ident)
    assert [(h["action"], h["version"]) for h in history] == [
        ("create", 1),
        ("delete", 2),
        ("undo", 3),
        ("update", 4),
    ]

"""Chat: room messages in sequence, direct messages, mentions, paging, author-only changes."""

from __future__ import annotations

import pytest

from server.auth.roles import Role
from server.http.errors import ApiError
from server.rooms.channel import MemoryChannel
from server.store.database import Store
from shared.protocol import catalog
from tests.rooms.support import STUDY, add_study, make_rooms, make_user


async def test_room_chat_pages_and_only_the_author_edits(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)
    sent = []
    for n in range(7):
        answer = await rooms.chat_send(
            alice, "a", {"study_uid": STUDY, "text": f"<script>{n}</script>"}
        )
        catalog().validate_ack("chat.send", {"ok": True, **answer})
        sent.append(answer["message"])
    page = await rooms.chat_history(alice, "a", {"study_uid": STUDY, "limit": 3})
    assert [m["text"] for m in page["messages"]] == [f"<script>{n}</script>" for n in (6, 5, 4)]
    assert page["more"] is True
    older = await rooms.chat_history(
        alice, "a", {"study_uid": STUDY, "limit": 5, "before": page["messages"][-1]["id"]}
    )
    assert [m["text"] for m in older["messages"]] == [
        f"<script>{n}</script>" for n in range(3, -1, -1)
    ]
    assert older["more"] is False

    with pytest.raises(ApiError) as caught:
        await rooms.chat_change(bob, "b", "edit", {"id": sent[0]["id"], "text": "mine now"})
    assert caught.value.code == "forbidden"
    edited = await rooms.chat_change(alice, "a", "edit", {"id": sent[0]["id"], "text": "fixed"})
    assert edited["message"]["text"] == "fixed"
    assert edited["message"]["edited_at"] is not None
    deleted = await rooms.chat_change(alice, "a", "delete", {"id": sent[1]["id"]})
    assert deleted["message"]["deleted"] is True
    assert deleted["message"]["text"] == ""
    with pytest.raises(ApiError):
        await rooms.chat_change(alice, "a", "edit", {"id": sent[1]["id"], "text": "back"})
    ops = channel.received("b", "room.op")
    assert [op["type"] for op in ops][-2:] == ["chat.edited", "chat.deleted"]
    assert [op["seq"] for op in ops] == list(range(1, 10))
    for op in ops:
        catalog().validate_outbound("room.op", op)


async def test_direct_messages_mentions_and_references(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    carol = await make_user(store, "carol")
    stranger = await make_user(store, "stranger", Role.RADIOLOGIST, facility="elsewhere")
    for principal, sid in ((alice, "a"), (bob, "b"), (carol, "c")):
        await channel.enter(sid, f"user:{principal.user_id}")
    await rooms.join(alice, "a", STUDY, None)
    await rooms.join(bob, "b", STUDY, None)

    dm = await rooms.chat_send(alice, "a", {"to_user": bob.user_id, "text": "psst"})
    # Each participant's copy carries the seq of their own direct-message stream.
    assert channel.received("b", "chat.direct") == [{**dm["message"], "seq": 1}]
    assert channel.received("a", "chat.direct") == [{**dm["message"], "seq": 1}]
    assert channel.received("c", "chat.direct") == []
    history = await rooms.chat_history(bob, "b", {"to_user": alice.user_id})
    assert [m["text"] for m in history["messages"]] == ["psst"]
    with pytest.raises(ApiError) as caught:
        await rooms.chat_send(alice, "a", {"to_user": stranger.user_id, "text": "hi"})
    assert caught.value.code == "not_found"
    with pytest.raises(ApiError) as caught:
        await rooms.chat_change(carol, "c", "delete", {"id": dm["message"]["id"]})
    assert caught.value.code == "not_found"

    looked = await rooms.chat_send(
        alice,
        "a",
        {
            "study_uid": STUDY,
            "text": "@carol look here",
            "mentions": ["carol"],
            "ref": {"viewport": {"instance_uid": "1.2.3", "frame": 12, "zoom": 2.0}},
        },
    )
    assert channel.received("c", "chat.mention") == [looked["message"]]
    assert looked["message"]["ref"]["viewport"]["frame"] == 12
    with pytest.raises(ApiError) as caught:
        await rooms.chat_send(alice, "a", {"study_uid": STUDY, "text": "x", "mentions": ["nobody"]})
    assert caught.value.code == "validation_failed"

"""Direct messages are numbered per user, so a reconnecting client resyncs what it missed."""

from __future__ import annotations

from server.auth.guard import AUTH_SERVICE
from server.rooms.channel import MemoryChannel
from server.store.database import Store
from shared.protocol import catalog
from tests.conftest import Noctis
from tests.rooms.clients import Inbox, call
from tests.rooms.support import make_rooms, make_user
from tests.support.sockets import socket_client


async def test_each_users_stream_is_numbered_and_replayed_after_since(store: Store) -> None:
    channel = MemoryChannel()
    rooms = make_rooms(store, channel)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    carol = await make_user(store, "carol")
    for principal, sid in ((alice, "a"), (bob, "b"), (carol, "c")):
        await channel.enter(sid, f"user:{principal.user_id}")
    first = await rooms.chat_send(alice, "a", {"to_user": bob.user_id, "text": "one"})
    await rooms.chat_send(carol, "c", {"to_user": bob.user_id, "text": "two"})
    await rooms.chat_change(alice, "a", "edit", {"id": first["message"]["id"], "text": "one!"})

    got_b = channel.received("b", "chat.direct")
    for payload in got_b:
        catalog().validate_outbound("chat.direct", payload)
    # Bob's stream spans both conversations; Alice's and Carol's are their own.
    assert [(m["text"], m["seq"]) for m in got_b] == [("one", 1), ("two", 2), ("one!", 3)]
    assert [(m["text"], m["seq"]) for m in channel.received("a", "chat.direct")] == [
        ("one", 1),
        ("one!", 2),
    ]
    assert [m["seq"] for m in channel.received("c", "chat.direct")] == [1]

    missed = await rooms.direct_resync(bob, 1)
    catalog().validate_ack("chat.direct.sync", {"ok": True, **missed})
    assert missed["seq"] == 3
    assert missed["complete"] is True
    assert missed["messages"] == got_b[1:]
    assert await rooms.direct_resync(bob, 3) == {"seq": 3, "messages": [], "complete": True}

    rooms.inbox.replay_limit = 2
    behind = await rooms.direct_resync(bob, 0)
    assert behind["complete"] is False
    assert [m["seq"] for m in behind["messages"]] == [2, 3]  # the newest; older by chat.history


async def test_over_socketio_a_reconnecting_reader_gets_the_direct_messages_it_missed(
    noctis: Noctis,
) -> None:
    alice = await noctis.token_for("alice")
    bob = await noctis.token_for("bob")
    async with socket_client(noctis.client, bob) as b:
        inbox = Inbox(b, "chat.direct")
        user = await noctis.app[AUTH_SERVICE].users.by_username("bob")
        assert user is not None
        bob_id = user.id
        async with socket_client(noctis.client, alice) as a:
            await call(a, "chat.send", {"to_user": bob_id, "text": "while you are here"})
            seen = await inbox.next("chat.direct")
            assert seen["seq"] == 1
    # Bob is offline now; Alice writes twice.
    async with socket_client(noctis.client, alice) as a:
        for text in ("first while away", "second while away"):
            sent = await call(a, "chat.send", {"to_user": bob_id, "text": text})
            assert sent.get("ok"), sent
    async with socket_client(noctis.client, bob) as b:
        answer = await call(b, "chat.direct.sync", {"since": seen["seq"]})
        catalog().validate_ack("chat.direct.sync", answer)
        assert [(m["seq"], m["text"]) for m in answer["messages"]] == [
            (2, "first while away"),
            (3, "second while away"),
        ]
        bad = await call(b, "chat.direct.sync", {"since": -1})
        assert bad["error"]["code"] == "validation_failed"

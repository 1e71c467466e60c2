"""The rooms' round-trip fixtures (shared with the client tests; the catalog test checks each
valid and invalid example) cover the room events, and the report example is a real message."""

from __future__ import annotations

import base64

from shared.protocol import fixtures

ROOM_FIXTURES = {name: body for name, body in fixtures().items() if name.startswith("rooms.")}


def test_room_events_have_fixtures() -> None:
    names = {body["name"] for body in ROOM_FIXTURES.values()}
    assert {"room.join", "room.op", "presence.update", "annotation.create", "chat.send"} <= names
    assert {"report.sync", "alert", "frame", "room.presence"} <= names


def test_the_report_fixture_is_a_real_sync_step1() -> None:
    message = ROOM_FIXTURES["rooms.report.sync"]["valid"][0]["message"]
    assert base64.b64decode(message)[:2] == b"\x00\x00"

"""The rooms' round-trip fixtures (shared with the client tests) match the catalog."""

from __future__ import annotations

import base64
import json

import pytest

from shared.protocol import catalog, fixtures

ROOM_FIXTURES = {name: body for name, body in fixtures().items() if name.startswith("rooms.")}


def test_there_are_room_fixtures() -> None:
    assert len(ROOM_FIXTURES) >= 10


@pytest.mark.parametrize("name", sorted(ROOM_FIXTURES))
def test_fixture_matches_the_catalog_and_round_trips(name: str) -> None:
    fixture = ROOM_FIXTURES[name]
    message = fixture["message"]
    assert json.loads(json.dumps(message)) == message
    spec = catalog().events[fixture["event"]]
    if fixture["kind"] == "ack":
        if fixture.get("error"):
            assert message["error"]["code"] in catalog().errors
        else:
            catalog().validate_ack(fixture["event"], message)
    elif spec.direction == "client->server":
        catalog().validate_event(fixture["event"], message)
    else:
        catalog().validate_outbound(fixture["event"], message)


def test_the_report_fixture_is_a_real_sync_step1() -> None:
    raw = base64.b64decode(ROOM_FIXTURES["rooms.report.sync"]["message"]["message"])
    assert raw[:2] == b"\x00\x00"

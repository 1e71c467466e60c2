"""The catalog in shared/protocol is consistent, and its fixtures round-trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.protocol import ROOT, Catalog, ProtocolError, catalog, fixtures


def test_every_schema_is_valid_json_schema() -> None:
    cat = Catalog()
    for source, document in cat.documents.items():
        for kind in ("events", "requests"):
            for name, spec in document.get(kind, {}).items():
                for part in ("payload", "ack", "body", "response"):
                    if part in spec:
                        Draft202012Validator.check_schema(spec[part])
                        assert isinstance(spec[part], dict), (source, name, part)


def test_every_event_has_direction_and_payload() -> None:
    for name, spec in catalog().events.items():
        assert spec.direction in {"client->server", "server->client", "both"}, name
        document = catalog().documents[spec.source]
        assert "payload" in document["events"][name], name


def test_every_error_code_has_status_and_message() -> None:
    for code, spec in catalog().errors.items():
        assert 400 <= spec["status"] <= 599, code
        assert spec["message"], code


def test_refs_resolve() -> None:
    """Validating anything forces every $ref to resolve; a broken ref raises, not fails."""
    cat = catalog()
    for name, spec in cat.events.items():
        if spec.direction != "server->client":
            with pytest.raises(ProtocolError):
                cat.validate_event(name, object())
    for name, request in cat.requests.items():
        if request.has_body:
            with pytest.raises(ProtocolError):
                cat.validate_request(name, object())


def _fixture_cases() -> list[tuple[str, str, Any, bool]]:
    cases = []
    for stem, fixture in fixtures().items():
        if "name" not in fixture:
            # One-message fixtures ({event, kind, message}) are checked by tests/rooms.
            continue
        kind, name = fixture["kind"], fixture["name"]
        cases += [(stem, f"{kind}:{name}", value, True) for value in fixture.get("valid", [])]
        cases += [(stem, f"{kind}:{name}", value, False) for value in fixture.get("invalid", [])]
    return cases


@pytest.mark.parametrize(("stem", "target", "value", "valid"), _fixture_cases())
def test_fixtures(stem: str, target: str, value: Any, valid: bool) -> None:
    kind, name = target.split(":", 1)
    cat = catalog()
    check = {
        "event": cat.validate_event,
        "outbound": cat.validate_outbound,
        "request": cat.validate_request,
        "response": cat.validate_response,
    }[kind]
    if valid:
        check(name, value)
    else:
        with pytest.raises(ProtocolError):
            check(name, value)


def test_fixture_files_are_well_formed() -> None:
    for path in sorted((ROOT / "fixtures").glob("*.json")):
        fixture = json.loads(path.read_text())
        if "name" not in fixture:
            # The rooms' one-message form: {event, kind: payload|ack, message}.
            assert fixture["kind"] in {"payload", "ack"}, path.name
            assert fixture["event"] in catalog().events, path.name
            assert "message" in fixture, path.name
            continue
        assert fixture["kind"] in {"event", "outbound", "request", "response"}, path.name
        assert fixture.get("valid") or fixture.get("invalid"), path.name

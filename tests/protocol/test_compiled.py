"""The compiled validators decide exactly as the reference (jsonschema) validator does.

The server validates every inbound event with code compiled from the catalog's schemas; the
reference validator stays as the explainer of rejections. Both are asked about every fixture and
about mutations of every valid fixture (a key dropped, a value of each wrong JSON type, an extra
key), so a schema keyword the compiler reads differently shows up here.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from shared.protocol import Catalog, ProtocolError, _pointer, fixtures

CAT = Catalog()
PARTS = {"event": "payload", "outbound": "payload", "request": "body", "response": "response"}
WRONG = [None, True, 0, 1.5, "x y", "", [], {}, -1, 10**12]


def _target(kind: str, name: str) -> tuple[str, str]:
    if kind in ("event", "outbound", "payload", "ack"):
        part = "ack" if kind == "ack" else "payload"
        return CAT.events[name].source, _pointer("events", name, part)
    return CAT.requests[name].source, _pointer("requests", name, PARTS[kind])


def _mutations(value: Any) -> Iterator[Any]:
    yield value
    if not isinstance(value, dict):
        return
    for key in value:
        dropped = {k: v for k, v in value.items() if k != key}
        yield dropped
        for wrong in WRONG:
            yield {**value, key: wrong}
        inner = value[key]
        if isinstance(inner, dict):
            for sub in _mutations(inner):
                yield {**value, key: sub}
    yield {**value, "unexpected": 1}


def _cases() -> list[tuple[str, str, str, Any]]:
    cases = []
    for stem, fixture in fixtures().items():
        if "name" in fixture:
            kind, name = fixture["kind"], fixture["name"]
            values = fixture.get("valid", []) + fixture.get("invalid", [])
        else:
            kind, name, values = fixture["kind"], fixture["event"], [fixture["message"]]
        for n, value in enumerate(values):
            cases.append((f"{stem}[{n}]", kind, name, value))
    return cases


def _agree(kind: str, name: str, value: Any) -> None:
    compiled = CAT._validator(*_target(kind, name))
    try:
        compiled.fast(copy.deepcopy(value))
        fast = True
    except Exception:
        fast = False
    assert fast == compiled.explain.is_valid(value), (name, value)


@pytest.mark.parametrize(("case", "kind", "name", "value"), _cases())
def test_compiled_and_reference_agree(case: str, kind: str, name: str, value: Any) -> None:
    for mutated in _mutations(value):
        _agree(kind, name, mutated)


def test_compiled_validation_leaves_the_payload_as_sent() -> None:
    """No defaults filled in: handlers see what the client sent."""
    for _, kind, name, value in _cases():
        before = copy.deepcopy(value)
        with contextlib.suppress(Exception):
            CAT._validator(*_target(kind, name)).fast(value)
        assert value == before, name


def test_a_rejection_is_explained_with_its_path() -> None:
    with pytest.raises(ProtocolError) as caught:
        CAT.validate_event("presence.update", {"study_uid": "1.2.3", "cursor": {"x": "left"}})
    assert caught.value.code == "validation_failed"
    assert caught.value.details == {"path": ["cursor", "x"]}
    assert caught.value.message.startswith("presence.update: cursor.x:")


def test_a_trailing_newline_does_not_pass_an_anchored_pattern() -> None:
    """Python's ``$`` matches before a final newline; the compiled patterns end at the string's
    end, so a UID with a newline appended is refused (the reference validator let it through)."""
    with pytest.raises(ProtocolError) as caught:
        CAT.validate_event("room.join", {"study_uid": "1.2.3\n"})
    assert caught.value.code == "validation_failed"

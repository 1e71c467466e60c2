"""The transition table, walked exhaustively: every (from, to, actor) is either allowed or refused
with the right error, and the expected table is written out independently of the code's."""

from __future__ import annotations

import itertools

import pytest

from server.http.errors import ApiError
from server.workflow.status import (
    ACTORS,
    PRIORITY_RANK,
    TRANSITIONS,
    Priority,
    Status,
    allowed,
    check_transition,
    higher,
)

S = Status
EXPECTED: dict[tuple[Status, Status], set[str]] = {
    (S.SCHEDULED, S.ARRIVED): {"admin", "technician", "system"},
    (S.SCHEDULED, S.CANCELLED): {"admin", "technician"},
    (S.SCHEDULED, S.UNREAD): {"admin", "technician", "system"},
    (S.ARRIVED, S.UNREAD): {"admin", "technician", "system"},
    (S.ARRIVED, S.CANCELLED): {"admin", "technician"},
    (S.UNREAD, S.READING): {"admin", "radiologist"},
    (S.UNREAD, S.CANCELLED): {"admin"},
    (S.READING, S.UNREAD): {"admin", "radiologist", "system"},
    (S.READING, S.PRELIMINARY): {"admin", "radiologist"},
    (S.READING, S.FINAL): {"admin", "radiologist"},
    (S.PRELIMINARY, S.READING): {"admin", "radiologist"},
    (S.PRELIMINARY, S.FINAL): {"admin", "radiologist"},
    (S.FINAL, S.AMENDED): {"admin", "radiologist"},
}

ALL_CASES = list(itertools.product(Status, Status, ACTORS))


def test_actors_are_every_role_and_the_system() -> None:
    assert set(ACTORS) == {"admin", "radiologist", "technician", "referring_physician", "system"}


def test_table_matches_the_written_policy() -> None:
    assert {k: set(v) for k, v in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("current", "target", "actor"), ALL_CASES)
def test_every_transition_for_every_actor(current: Status, target: Status, actor: str) -> None:
    permitted = actor in EXPECTED.get((current, target), set())
    assert allowed(current, target, actor) is permitted
    if permitted:
        check_transition(current, target, actor)
        return
    with pytest.raises(ApiError) as caught:
        check_transition(current, target, actor)
    expected_code = "forbidden" if (current, target) in EXPECTED else "invalid_transition"
    assert caught.value.code == expected_code
    assert current.value in caught.value.message
    assert target.value in caught.value.message


def test_terminal_states_have_no_way_out() -> None:
    for terminal in (S.CANCELLED, S.AMENDED):
        assert not [key for key in TRANSITIONS if key[0] is terminal]


def test_referring_physicians_never_move_a_study() -> None:
    assert not [key for key, who in TRANSITIONS.items() if "referring_physician" in who]


def test_priority_order_and_triage_only_raises() -> None:
    assert sorted(Priority, key=PRIORITY_RANK.__getitem__) == [
        Priority.STAT,
        Priority.URGENT,
        Priority.ROUTINE,
    ]
    assert higher(Priority.ROUTINE, Priority.STAT) is Priority.STAT
    assert higher(Priority.STAT, Priority.URGENT) is Priority.STAT
    assert higher(Priority.URGENT, Priority.ROUTINE) is Priority.URGENT

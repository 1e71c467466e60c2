"""The study status machine and priorities: one table says which moves exist and who may make them.

Every status change anywhere in the workflow goes through ``check_transition``, so the table below
is the whole policy; the tests walk it exhaustively for every actor. ``system`` is the server
itself acting on DICOM events (MPPS, images arriving) or on its clock (an abandoned claim).
"""

from __future__ import annotations

from enum import StrEnum

from server.auth.roles import Role
from server.http.errors import ApiError


class Status(StrEnum):
    SCHEDULED = "scheduled"
    ARRIVED = "arrived"
    UNREAD = "unread"
    READING = "reading"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


SYSTEM = "system"
ACTORS: tuple[str, ...] = (*(role.value for role in Role), SYSTEM)

_ADMIN = Role.ADMIN.value
_RAD = Role.RADIOLOGIST.value
_TECH = Role.TECHNICIAN.value

TRANSITIONS: dict[tuple[Status, Status], frozenset[str]] = {
    (Status.SCHEDULED, Status.ARRIVED): frozenset({_ADMIN, _TECH, SYSTEM}),
    (Status.SCHEDULED, Status.CANCELLED): frozenset({_ADMIN, _TECH}),
    # Images can arrive without a modality ever sending MPPS: the study is then readable at once.
    (Status.SCHEDULED, Status.UNREAD): frozenset({_ADMIN, _TECH, SYSTEM}),
    (Status.ARRIVED, Status.UNREAD): frozenset({_ADMIN, _TECH, SYSTEM}),
    (Status.ARRIVED, Status.CANCELLED): frozenset({_ADMIN, _TECH}),
    (Status.UNREAD, Status.READING): frozenset({_ADMIN, _RAD}),
    (Status.UNREAD, Status.CANCELLED): frozenset({_ADMIN}),
    # Back to the queue: a release, or a claim that expired while nobody touched it.
    (Status.READING, Status.UNREAD): frozenset({_ADMIN, _RAD, SYSTEM}),
    (Status.READING, Status.PRELIMINARY): frozenset({_ADMIN, _RAD}),
    (Status.READING, Status.FINAL): frozenset({_ADMIN, _RAD}),
    (Status.PRELIMINARY, Status.READING): frozenset({_ADMIN, _RAD}),
    (Status.PRELIMINARY, Status.FINAL): frozenset({_ADMIN, _RAD}),
    (Status.FINAL, Status.AMENDED): frozenset({_ADMIN, _RAD}),
}

# Studies in these states wait for a radiologist; the turnaround clock runs while they do.
AWAITING_REPORT: frozenset[Status] = frozenset(
    {Status.ARRIVED, Status.UNREAD, Status.READING, Status.PRELIMINARY}
)
CLAIMABLE: frozenset[Status] = frozenset({Status.UNREAD, Status.READING, Status.PRELIMINARY})
REPORTED: frozenset[Status] = frozenset({Status.FINAL, Status.AMENDED})

# Sort key: the most urgent first.
PRIORITY_RANK: dict[Priority, int] = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}

# Turnaround targets, from arrival of the images to a signed report.
TURNAROUND_S: dict[Priority, float] = {
    Priority.STAT: 3600.0,
    Priority.URGENT: 4 * 3600.0,
    Priority.ROUTINE: 24 * 3600.0,
}


def allowed(current: Status, target: Status, actor: str) -> bool:
    return actor in TRANSITIONS.get((current, target), frozenset())


def check_transition(current: Status, target: Status, actor: str) -> None:
    """Raise a clear error for a move that does not exist or that this actor may not make."""
    who = TRANSITIONS.get((current, target))
    if who is None:
        raise ApiError(
            "invalid_transition",
            f"A study cannot go from {current.value} to {target.value}.",
            details={"from": current.value, "to": target.value},
        )
    if actor not in who:
        raise ApiError(
            "forbidden",
            f"A {actor} may not move a study from {current.value} to {target.value}.",
            details={"from": current.value, "to": target.value},
        )


def higher(a: Priority, b: Priority) -> Priority:
    """The more urgent of two priorities: triage only ever raises a priority."""
    return a if PRIORITY_RANK[a] <= PRIORITY_RANK[b] else b

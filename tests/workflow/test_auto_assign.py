"""Auto-assignment: the most specific rule hands each newly readable study to the next reader on
duty, in turn; studies no rule matches stay unassigned."""

from __future__ import annotations

from server.appkeys import STORE
from server.auth.roles import Role
from tests.workflow.conftest import WorkflowHarness


async def test_round_robin_by_modality(harness: WorkflowHarness) -> None:
    await harness.user("rad3", Role.RADIOLOGIST)
    await harness.call(
        "POST",
        "/api/assignment-rules",
        "admin",
        {"modality": "CT", "readers": ["rad1", "rad2"]},
        201,
    )
    generic = await harness.call(
        "POST", "/api/assignment-rules", "admin", {"readers": ["rad3"]}, 201
    )
    assigned = []
    for n, modality in enumerate(["CT", "CT", "CT", "MR"]):
        study = await harness.order(accession_number=f"AA{n}", modality=modality)
        await harness.call(
            "POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"}
        )
        row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
        assigned.append(row["assigned_to"])
    assert assigned == ["rad1", "rad2", "rad1", "rad3"]
    notes = await harness.call("GET", "/api/notifications", "rad1")
    assert [n["kind"] for n in notes["items"]] == ["assigned", "assigned"]
    audit = await harness.noctis.app[STORE]["audit"].count_documents(
        {"action": "study.assign.auto", "actor": "system"}
    )
    assert audit == 4
    await harness.call("DELETE", f"/api/assignment-rules/{generic['id']}", "admin")
    study = await harness.order(accession_number="AA9", modality="MR")
    await harness.call("POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"})
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["assigned_to"] is None
    rules = await harness.call("GET", "/api/assignment-rules", "admin")
    assert [r["modality"] for r in rules["rules"]] == ["CT"]


async def test_rules_are_validated(harness: WorkflowHarness) -> None:
    bad = await harness.call("POST", "/api/assignment-rules", "admin", {"readers": ["tech"]}, 422)
    assert "not a reader" in bad["error"]["message"]
    await harness.call("POST", "/api/assignment-rules", "admin", {"readers": []}, 422)
    await harness.call("POST", "/api/assignment-rules", "rad1", {"readers": ["rad1"]}, 403)
    await harness.call("DELETE", "/api/assignment-rules/nope", "admin", status=404)

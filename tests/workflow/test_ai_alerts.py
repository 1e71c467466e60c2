"""AI findings become annotations and alerts; bad intake stores nothing; alerts are acknowledged,
resolved, escalated by hand and by the clock; overdue studies raise alerts; the rooms' changes
are mirrored."""

from __future__ import annotations

import re
from typing import Any

import pytest

from server.appkeys import HUB, STORE
from server.auth.guard import AUTH_SERVICE
from server.hub import DomainEvent
from server.workflow.alerts import ESCALATION_WINDOW_S
from tests.workflow.conftest import WorkflowHarness

ALERT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def finding(uid: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "study_instance_uid": uid,
        "finding_type": "intracranial-haemorrhage",
        "severity": "critical",
        "confidence": 0.93,
        "description": "Suspected acute subdural haematoma.",
        "location": {"sop_instance_uid": "1.2.3.4.5", "frame": 0, "points": [[10, 20], [30, 40]]},
        "model": {"name": "bleednet", "version": "2.1.0"},
    }
    body.update(overrides)
    return body


async def engine_key(h: WorkflowHarness, name: str = "bleednet") -> str:
    body = await h.call("POST", "/api/ai/engines", "admin", {"name": name}, 201)
    assert body["api_key"].startswith("nxk_")
    return str(body["api_key"])


async def post_finding(
    h: WorkflowHarness, key: str | None, body: Any, status: int = 201
) -> dict[str, Any]:
    headers = {"X-API-Key": key} if key is not None else {}
    response = await h.noctis.client.post("/api/ai/findings", json=body, headers=headers)
    result: dict[str, Any] = await response.json()
    assert response.status == status, result
    return result


async def unread(h: WorkflowHarness, **overrides: Any) -> dict[str, Any]:
    study = await h.order(**overrides)
    await h.call("POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"})
    result: dict[str, Any] = await h.call("GET", f"/api/studies/{study['id']}", "rad1")
    return result


def check_alert_shape(alert: dict[str, Any]) -> None:
    """The rooms' alerts.json #/$defs/alert: required keys and their types."""
    assert ALERT_ID.match(alert["id"])
    for key in ("study_uid", "facility", "title", "source"):
        assert isinstance(alert[key], str)
    assert alert["severity"] in {"info", "warning", "critical"}
    assert alert["status"] in {"open", "acknowledged", "escalated", "resolved"}
    assert isinstance(alert["version"], int)
    assert alert["version"] >= 1
    assert isinstance(alert["raised_at"], float)
    assert isinstance(alert["escalation_level"], int)


async def test_finding_raises_alert_and_bumps_priority(harness: WorkflowHarness) -> None:
    key = await engine_key(harness)
    study = await unread(harness)
    await harness.call("POST", f"/api/studies/{study['id']}/assign", "admin", {"username": "rad1"})
    result = await post_finding(harness, key, finding(study["study_instance_uid"]))
    assert result["engine"] == "bleednet"
    assert result["alert_id"]
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["priority"] == "stat"
    assert row["open_alerts"] == 1
    raised = harness.of("alert.raised")
    assert len(raised) == 1
    check_alert_shape(dict(raised[0].data))
    assert raised[0].data["assigned_to"] == "rad1"
    rad1 = await harness.noctis.app[AUTH_SERVICE].users.by_username("rad1")
    assert rad1 is not None
    assert raised[0].data["assigned_user_id"] == rad1.id
    assert raised[0].facility == "main"
    annotation = harness.of("ai.finding.created")[0].data
    assert annotation["study_uid"] == study["study_instance_uid"]
    assert annotation["finding"]["location"]["points"] == [[10, 20], [30, 40]]
    notes = await harness.call("GET", "/api/notifications", "rad1")
    assert "alert" in [n["kind"] for n in notes["items"]]
    # An info finding only annotates.
    await post_finding(harness, key, finding(study["study_instance_uid"], severity="info"))
    assert len(harness.of("alert.raised")) == 1
    listed = await harness.call("GET", f"/api/studies/{study['id']}/findings", "rad1")
    assert [f["severity"] for f in listed["findings"]] == ["critical", "info"]


async def test_finding_by_accession_and_warning_is_urgent(harness: WorkflowHarness) -> None:
    key = await engine_key(harness)
    study = await unread(harness, accession_number="ACC-AI")
    body = finding(study["study_instance_uid"], severity="warning")
    del body["study_instance_uid"]
    body["accession_number"] = "ACC-AI"
    await post_finding(harness, key, body)
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["priority"] == "urgent"


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        (None, None, 401, "invalid_api_key"),
        ("nxk_wrong", None, 401, "invalid_api_key"),
        ("Bearer x", None, 401, "invalid_api_key"),
        ("GOOD", {"study_instance_uid": "9.9.9"}, 422, "unknown_study"),
        ("GOOD", {"confidence": 1.5}, 422, "validation_failed"),
        ("GOOD", {"severity": "apocalyptic"}, 422, "validation_failed"),
        ("GOOD", {"model": {"name": "x"}}, 422, "validation_failed"),
        ("GOOD", {"location": {"frame": 1}}, 422, "validation_failed"),
        ("GOOD", {"extra": True}, 422, "validation_failed"),
        ("GOOD", {"study_instance_uid": "not-a-uid"}, 422, "validation_failed"),
    ],
)
async def test_bad_intake_is_refused_and_stores_nothing(
    harness: WorkflowHarness, key: str | None, body: Any, status: int, code: str
) -> None:
    good = await engine_key(harness)
    study = await unread(harness)
    payload = finding(study["study_instance_uid"], **(body or {}))
    error = await post_finding(harness, good if key == "GOOD" else key, payload, status)
    assert error["error"]["code"] == code
    assert error["error"]["message"]
    store = harness.noctis.app[STORE]
    assert await store["ai_findings"].count_documents({}) == 0
    assert await store["alerts"].count_documents({}) == 0
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["priority"] == "routine"
    assert not harness.of("alert.raised")


async def test_engine_of_another_facility_cannot_see_the_study(harness: WorkflowHarness) -> None:
    body = await harness.call(
        "POST", "/api/ai/engines", "admin", {"name": "northnet", "facility": "north"}, 201
    )
    study = await unread(harness)
    error = await post_finding(harness, body["api_key"], finding(study["study_instance_uid"]), 422)
    assert error["error"]["code"] == "unknown_study"
    dup = await harness.call("POST", "/api/ai/engines", "admin", {"name": "northnet"}, 409)
    assert dup["error"]["code"] == "conflict"
    await harness.call("POST", "/api/ai/engines", "rad1", {"name": "x1"}, 403)


async def test_acknowledge_resolve_and_manual_escalation(harness: WorkflowHarness) -> None:
    key = await engine_key(harness)
    study = await unread(harness)
    result = await post_finding(harness, key, finding(study["study_instance_uid"]))
    alert_id = result["alert_id"]
    escalated = await harness.call("POST", f"/api/alerts/{alert_id}/escalate", "rad1", {})
    assert escalated["status"] == "escalated"
    assert escalated["escalation_level"] == 1
    assert escalated["assigned_to"] in {"rad1", "rad2"}
    acked = await harness.call(
        "POST", f"/api/alerts/{alert_id}/acknowledge", "rad2", {"note": "looking"}
    )
    assert acked["status"] == "acknowledged"
    assert acked["updated_by"]["username"] == "rad2"
    twice = await harness.call("POST", f"/api/alerts/{alert_id}/acknowledge", "rad2", {}, 409)
    assert twice["error"]["code"] == "invalid_transition"
    resolved = await harness.call("POST", f"/api/alerts/{alert_id}/resolve", "rad2", {})
    assert resolved["status"] == "resolved"
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["open_alerts"] == 0
    updates = [e.data["status"] for e in harness.of("alert.updated")]
    assert updates == ["escalated", "acknowledged", "resolved"]
    for event in harness.of("alert.updated"):
        check_alert_shape(dict(event.data))
    await harness.call("POST", f"/api/alerts/{alert_id}/acknowledge", "tech", {}, 403)
    await harness.call("POST", f"/api/alerts/{alert_id}/explode", "rad1", {}, 404)
    listed = await harness.call("GET", "/api/alerts?status=resolved", "rad1")
    assert [a["id"] for a in listed["items"]] == [alert_id]


async def test_unacknowledged_alert_escalates_on_the_clock(harness: WorkflowHarness) -> None:
    key = await engine_key(harness)
    study = await unread(harness)
    await harness.call("POST", f"/api/studies/{study['id']}/assign", "admin", {"username": "rad1"})
    result = await post_finding(harness, key, finding(study["study_instance_uid"]))
    window = ESCALATION_WINDOW_S["critical"]
    harness.clock.advance(window - 1)
    assert (await harness.workflow.tick())["alerts_escalated"] == 0
    harness.clock.advance(2)
    assert (await harness.workflow.tick())["alerts_escalated"] == 1
    alert = await harness.noctis.app[STORE]["alerts"].find_one({"_id": result["alert_id"]})
    assert alert is not None
    assert alert["status"] == "escalated"
    assert alert["escalation_level"] == 1
    assert alert["assigned_to"] == "rad2"
    await harness.relogin()
    notes = await harness.call("GET", "/api/notifications", "rad2")
    assert [n["kind"] for n in notes["items"]] == ["escalated"]
    # Still nobody acknowledges: the next level goes to an admin.
    harness.clock.advance(window + 1)
    assert (await harness.workflow.tick())["alerts_escalated"] == 1
    alert = await harness.noctis.app[STORE]["alerts"].find_one({"_id": result["alert_id"]})
    assert alert is not None
    assert (alert["escalation_level"], alert["assigned_to"]) == (2, "admin")
    # Acknowledged alerts stay put.
    await harness.relogin()
    await harness.call("POST", f"/api/alerts/{result['alert_id']}/acknowledge", "admin", {})
    harness.clock.advance(window * 10)
    assert (await harness.workflow.tick())["alerts_escalated"] == 0


async def test_overdue_study_raises_one_alert(harness: WorkflowHarness) -> None:
    study = await unread(harness, priority="urgent")
    assert (await harness.workflow.tick())["overdue_flagged"] == 0
    harness.clock.advance(4 * 3600 + 1)
    assert (await harness.workflow.tick())["overdue_flagged"] == 1
    assert (await harness.workflow.tick())["overdue_flagged"] == 0
    raised = harness.of("alert.raised")
    assert [e.data["kind"] for e in raised] == ["overdue"]
    assert raised[0].data["study_id"] == study["id"]
    assert raised[0].data["severity"] == "warning"


async def test_rooms_alert_changes_are_mirrored(harness: WorkflowHarness) -> None:
    key = await engine_key(harness)
    study = await unread(harness)
    result = await post_finding(harness, key, finding(study["study_instance_uid"]))
    alert = await harness.noctis.app[STORE]["alerts"].find_one({"_id": result["alert_id"]})
    assert alert is not None
    hub = harness.noctis.app[HUB]
    data = {
        **{k: alert[k] for k in ("study_uid", "facility", "severity", "title")},
        "id": alert["_id"],
        "status": "acknowledged",
        "version": alert["version"] + 1,
        "source": "rooms",
        "updated_by": {"user_id": "u1", "username": "rad1"},
    }
    await hub.publish(DomainEvent("alert.updated", data, "main"))
    await hub.publish(DomainEvent("alert.updated", {**data, "status": "nonsense"}, "main"))
    mirrored = await harness.noctis.app[STORE]["alerts"].find_one({"_id": alert["_id"]})
    assert mirrored is not None
    assert mirrored["status"] == "acknowledged"
    assert mirrored["acknowledged_at"] is not None
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["open_alerts"] == 0
    # An old version never overwrites a newer one.
    await hub.publish(DomainEvent("alert.updated", {**data, "status": "open"}, "main"))
    mirrored = await harness.noctis.app[STORE]["alerts"].find_one({"_id": alert["_id"]})
    assert mirrored is not None
    assert mirrored["status"] == "acknowledged"


async def test_feedback_per_reader(harness: WorkflowHarness) -> None:
    key = await engine_key(harness)
    study = await unread(harness)
    result = await post_finding(harness, key, finding(study["study_instance_uid"]))
    fid = result["id"]
    await harness.call("POST", f"/api/ai/findings/{fid}/feedback", "rad1", {"verdict": "agree"})
    await harness.call("POST", f"/api/ai/findings/{fid}/feedback", "rad2", {"verdict": "agree"})
    changed = await harness.call(
        "POST", f"/api/ai/findings/{fid}/feedback", "rad2", {"verdict": "disagree"}
    )
    assert changed["feedback"] == {"rad1": "agree", "rad2": "disagree"}
    await harness.call("POST", f"/api/ai/findings/{fid}/feedback", "rad1", {"verdict": "meh"}, 422)
    await harness.call(
        "POST", f"/api/ai/findings/{fid}/feedback", "tech", {"verdict": "agree"}, 403
    )
    await harness.call("POST", "/api/ai/findings/nope/feedback", "rad1", {"verdict": "agree"}, 404)

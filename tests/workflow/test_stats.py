"""Statistics: pure summaries with known values, and the admin-only endpoints over real data."""

from __future__ import annotations

from typing import Any

from server.workflow import stats
from tests.workflow.conftest import START, WorkflowHarness

T0 = START.timestamp()


def test_turnaround_summary_with_known_values() -> None:
    rows = [
        {"priority": "stat", "arrived_at": T0, "reported_at": T0 + 600},
        {"priority": "stat", "arrived_at": T0, "reported_at": T0 + 1800},
        {"priority": "stat", "arrived_at": T0, "reported_at": T0 + 7200},
        {"priority": "routine", "arrived_at": T0, "reported_at": None},
    ]
    out = stats.turnaround(rows)["priorities"]
    assert out["stat"]["count"] == 3
    assert out["stat"]["p50_s"] == 1800
    assert out["stat"]["mean_s"] == 3200
    assert out["stat"]["within_target"] == 2
    assert out["routine"]["count"] == 0


def test_alert_and_ai_summaries() -> None:
    alerts = [
        {
            "severity": "critical",
            "status": "acknowledged",
            "raised_at": T0,
            "acknowledged_at": T0 + 60,
            "escalation_level": 0,
        },
        {
            "severity": "critical",
            "status": "escalated",
            "raised_at": T0,
            "acknowledged_at": None,
            "escalation_level": 1,
        },
        {
            "severity": "warning",
            "status": "resolved",
            "raised_at": T0,
            "acknowledged_at": T0 + 300,
            "escalation_level": 2,
        },
    ]
    out = stats.alert_response(alerts)["severities"]
    assert out["critical"]["acknowledged"]["p50_s"] == 60
    assert out["critical"]["unacknowledged"] == 1
    assert out["critical"]["escalated"] == 1
    assert out["warning"]["escalated"] == 1
    model = {"name": "m", "version": "1"}
    feedback = [
        {"engine": "e", "model": model, "verdict": "agree"},
        {"engine": "e", "model": model, "verdict": "agree"},
        {"engine": "e", "model": model, "verdict": "disagree"},
    ]
    assert stats.ai_agreement(feedback)["models"] == [
        {"engine": "e", "model": "m", "version": "1", "agree": 2, "disagree": 1, "agreement": 0.667}
    ]


async def test_stats_endpoints(harness: WorkflowHarness) -> None:
    for n, modality in enumerate(["CT", "CT", "MR"]):
        study = await harness.order(accession_number=f"S{n}", modality=modality)
        await harness.call(
            "POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"}
        )
    first = (await harness.call("GET", "/api/worklist?modality=MR", "rad1"))["items"][0]["id"]
    await harness.call("POST", f"/api/studies/{first}/claim", "rad1")
    harness.clock.advance(1200)
    await harness.relogin()
    await harness.call("POST", f"/api/studies/{first}/report/sign", "rad1", {"text": "ok"}, 201)

    async def get(name: str, query: str = "") -> Any:
        return await harness.call("GET", f"/api/stats/{name}{query}", "admin")

    volumes = await get("volumes")
    assert volumes["series"] == [
        {"day": "2026-03-02", "modality": "CT", "count": 2},
        {"day": "2026-03-02", "modality": "MR", "count": 1},
    ]
    turnaround = await get("turnaround")
    assert turnaround["priorities"]["routine"]["count"] == 1
    assert turnaround["priorities"]["routine"]["p50_s"] == 1200
    workload = await get("workload")
    assert workload["readers"] == [
        {"username": "rad1", "assigned_open": 0, "claimed": 0, "signed": 1, "addenda": 0}
    ]
    harness.clock.advance(25 * 3600)
    await harness.relogin()
    overdue = await get("overdue")
    assert overdue["total"] == 2
    assert overdue["by_modality"] == {"CT": 2}
    assert (await get("alerts"))["severities"]["critical"]["unacknowledged"] == 0
    assert (await get("ai"))["models"] == []
    assert (await get("volumes", "?since=2026-03-03T00:00:00Z"))["series"] == []
    denied = await harness.call("GET", "/api/stats/volumes", "rad1", status=403)
    assert denied["error"]["code"] == "forbidden"
    unknown = await harness.call("GET", "/api/stats/bogus", "admin", status=404)
    assert unknown["error"]["code"] == "not_found"
    bad = await harness.call(
        "GET",
        "/api/stats/volumes?since=2026-03-04T00:00:00Z&until=2026-03-03T00:00:00Z",
        "admin",
        status=400,
    )
    assert bad["error"]["code"] == "bad_request"

"""Statistics for admins, as JSON the client can chart.

The summaries are pure functions over rows; ``Statistics`` fetches the rows of one facility and
time range with a projection and a hard cap, so a request never reads without bound. (The
embedded store's aggregation support is partial, so the grouping happens here, once, for every
backend.)
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from server.store.database import Document, Store
from server.workflow.ai import FEEDBACK
from server.workflow.alerts import COLLECTION as ALERTS
from server.workflow.reports import COLLECTION as REPORTS
from server.workflow.status import AWAITING_REPORT, TURNAROUND_S, Priority
from server.workflow.studies import COLLECTION as STUDIES
from server.workflow.studies import is_overdue

MAX_ROWS = 50_000
NAMES = ("volumes", "turnaround", "overdue", "alerts", "ai", "workload")

Row = Mapping[str, Any]


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean_s": None, "p50_s": None, "p90_s": None}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean_s": round(statistics.fmean(ordered), 1),
        "p50_s": round(statistics.median(ordered), 1),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
    }


def volumes(studies: Iterable[Row]) -> dict[str, Any]:
    """Studies acquired (arrived) per day and modality."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in studies:
        counts[(_day(row["arrived_at"]), row.get("modality") or "OT")] += 1
    return {
        "series": [
            {"day": day, "modality": modality, "count": count}
            for (day, modality), count in sorted(counts.items())
        ]
    }


def turnaround(studies: Iterable[Row]) -> dict[str, Any]:
    per: dict[str, list[float]] = defaultdict(list)
    for row in studies:
        if row.get("reported_at") is not None and row.get("arrived_at") is not None:
            per[row["priority"]].append(row["reported_at"] - row["arrived_at"])
    out = {}
    for priority in Priority:
        values = per.get(priority.value, [])
        target = TURNAROUND_S[priority]
        out[priority.value] = {
            **_spread(values),
            "target_s": target,
            "within_target": sum(1 for v in values if v <= target),
        }
    return {"priorities": out}


def overdue(studies: Iterable[Row], now: float) -> dict[str, Any]:
    by_priority: Counter[str] = Counter()
    by_modality: Counter[str] = Counter()
    for row in studies:
        if is_overdue(row, now):
            by_priority[row["priority"]] += 1
            by_modality[row.get("modality") or "OT"] += 1
    return {
        "total": sum(by_priority.values()),
        "by_priority": dict(sorted(by_priority.items())),
        "by_modality": dict(sorted(by_modality.items())),
    }


def alert_response(alerts: Iterable[Row]) -> dict[str, Any]:
    waits: dict[str, list[float]] = defaultdict(list)
    open_count: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    for row in alerts:
        severity = row["severity"]
        if row.get("acknowledged_at") is not None:
            waits[severity].append(row["acknowledged_at"] - row["raised_at"])
        elif row["status"] != "resolved":
            open_count[severity] += 1
        if int(row.get("escalation_level", 0)) > 0:
            escalated[severity] += 1
    return {
        "severities": {
            severity: {
                "acknowledged": _spread(waits.get(severity, [])),
                "unacknowledged": open_count[severity],
                "escalated": escalated[severity],
            }
            for severity in ("info", "warning", "critical")
        }
    }


def ai_agreement(feedback: Iterable[Row]) -> dict[str, Any]:
    tally: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for row in feedback:
        model = row.get("model") or {}
        key = (row["engine"], str(model.get("name", "")), str(model.get("version", "")))
        tally[key][row["verdict"]] += 1
    models = []
    for (engine, name, version), counts in sorted(tally.items()):
        total = counts["agree"] + counts["disagree"]
        models.append(
            {
                "engine": engine,
                "model": name,
                "version": version,
                "agree": counts["agree"],
                "disagree": counts["disagree"],
                "agreement": round(counts["agree"] / total, 3) if total else None,
            }
        )
    return {"models": models}


def workload(studies: Iterable[Row], reports: Iterable[Row]) -> dict[str, Any]:
    readers: dict[str, Counter[str]] = defaultdict(Counter)
    waiting = {s.value for s in AWAITING_REPORT}
    for row in studies:
        if row.get("assigned_to") and row["status"] in waiting:
            readers[row["assigned_to"]]["assigned_open"] += 1
        if row.get("claimed_by"):
            readers[row["claimed_by"]]["claimed"] += 1
    for row in reports:
        readers[row["signer"]]["signed" if row["kind"] == "report" else "addenda"] += 1
    keys = ("assigned_open", "claimed", "signed", "addenda")
    return {
        "readers": [
            {"username": name, **{k: counts[k] for k in keys}}
            for name, counts in sorted(readers.items())
        ]
    }


class Statistics:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def _rows(self, collection: str, match: Document, fields: Iterable[str]) -> list[Row]:
        projection = dict.fromkeys(fields, 1)
        cursor = self._store[collection].find(match, projection).limit(MAX_ROWS)
        return [row async for row in cursor]

    async def compute(
        self, name: str, facility: str | None, since: float, until: float, now: float
    ) -> dict[str, Any]:
        scope: Document = {} if facility is None else {"facility": facility}
        window = {"$gte": since, "$lt": until}
        if name == "volumes":
            rows = await self._rows(
                STUDIES, {**scope, "arrived_at": window}, ("arrived_at", "modality")
            )
            return volumes(rows)
        if name == "turnaround":
            rows = await self._rows(
                STUDIES,
                {**scope, "reported_at": window},
                ("priority", "reported_at", "arrived_at"),
            )
            return turnaround(rows)
        if name == "overdue":
            rows = await self._rows(
                STUDIES,
                {**scope, "due_at": {"$lt": now}},
                ("priority", "modality", "due_at", "status"),
            )
            return overdue(rows, now)
        if name == "alerts":
            rows = await self._rows(
                ALERTS,
                {**scope, "raised_at": window},
                ("severity", "status", "raised_at", "acknowledged_at", "escalation_level"),
            )
            return alert_response(rows)
        if name == "ai":
            rows = await self._rows(
                FEEDBACK, {**scope, "at": window}, ("engine", "model", "verdict")
            )
            return ai_agreement(rows)
        studies = await self._rows(
            STUDIES,
            {**scope, "status": {"$in": sorted(s.value for s in AWAITING_REPORT)}},
            ("assigned_to", "claimed_by", "status"),
        )
        reports = await self._rows(REPORTS, {**scope, "signed_at": window}, ("signer", "kind"))
        return workload(studies, reports)

"""The rooms' view of alerts: a projection kept from hub events, and reader actions on it.

Alerts are raised elsewhere (workflow, later AI) and arrive as ``alert.raised``/``alert.updated``
hub events. The projection keeps the newest version of each, so a snapshot can list a study's
open alerts and a replayed or late hub event never rolls an alert back.
"""

from __future__ import annotations

import time
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pymongo.errors import DuplicateKeyError

from server.auth.roles import Permission
from server.auth.service import Principal
from server.http.errors import ApiError
from server.rooms.annotations import actor
from server.rooms.oplog import Clock
from server.store.database import Document, IndexSpec, Store
from shared.protocol import BASE_URI, catalog

ALERTS = "room_alerts"
INDEXES = [IndexSpec(ALERTS, [("study_uid", 1), ("status", 1)])]
RAISED = "alert.raised"
UPDATED = "alert.updated"
SOURCE = "rooms"

# action -> (statuses it may start from, status it leads to)
TRANSITIONS = {
    "acknowledge": ({"open", "escalated"}, "acknowledged"),
    "resolve": ({"open", "acknowledged", "escalated"}, "resolved"),
    "escalate": ({"open", "acknowledged"}, "escalated"),
}


def check_alert(data: Any) -> dict[str, Any]:
    """Hub data is trusted no more than client data: it must match the catalog's alert."""
    validator = Draft202012Validator(
        {"$ref": f"{BASE_URI}events/alerts.json#/$defs/alert"}, registry=catalog().registry
    )
    error = best_match(validator.iter_errors(data))
    if error is not None:
        raise ValueError(f"alert event does not match the catalog: {error.message}")
    return dict(data)


class Alerts:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self._alerts = store[ALERTS]
        self._clock = clock

    async def accept(self, alert: dict[str, Any]) -> bool:
        """Store an alert if it is newer than what we hold; False for a stale or repeated one."""
        result = await self._alerts.update_one(
            {"_id": alert["id"], "version": {"$lt": alert["version"]}}, {"$set": alert}
        )
        if result.matched_count:
            return True
        try:
            await self._alerts.insert_one({**alert, "_id": alert["id"]})
        except DuplicateKeyError:
            return False
        return True

    async def open_for_study(self, study_uid: str) -> list[Document]:
        cursor = self._alerts.find({"study_uid": study_uid, "status": {"$ne": "resolved"}})
        return [public(doc) async for doc in cursor.sort("raised_at", 1)]

    async def act(
        self, principal: Principal, action: str, alert_id: str, version: int, note: str | None
    ) -> Document:
        principal.require(Permission.ALERTS_MANAGE)
        current = await self._alerts.find_one({"_id": alert_id})
        if current is None or not principal.may_access_facility(current["facility"]):
            raise ApiError("not_found", "No such alert.")
        if current["version"] != version:
            raise ApiError(
                "stale_version",
                f"This alert is at version {current['version']}, not {version}.",
                details={"current": public(current)},
            )
        sources, target = TRANSITIONS[action]
        if current["status"] not in sources:
            raise ApiError("conflict", f"An alert that is {current['status']} cannot {action}.")
        changes: Document = {
            "status": target,
            "version": version + 1,
            "updated_at": self._clock(),
            "updated_by": actor(principal),
            "note": note,
            "source": SOURCE,
        }
        if action == "escalate":
            changes["escalation_level"] = int(current.get("escalation_level", 0)) + 1
        result = await self._alerts.update_one(
            {"_id": alert_id, "version": version}, {"$set": changes}
        )
        if result.matched_count == 0:
            latest = await self._alerts.find_one({"_id": alert_id})
            raise ApiError(
                "stale_version",
                "Somebody else changed this alert first.",
                details={"current": public(latest) if latest else None},
            )
        return public({**current, **changes})


def public(doc: Document) -> Document:
    return {key: value for key, value in doc.items() if key != "_id"}

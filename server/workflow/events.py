"""The domain events the workflow publishes on the hub, by name, and the one way to publish them.

Each topic is also a server->client event in ``shared/protocol/events/worklist.json`` or
``alerts.json`` with the same name and payload, so the rooms can forward ``event.data`` as-is:
``worklist.changed``, ``study.status_changed`` and ``report.signed`` go to the facility's
``worklist`` room, ``alert.*`` and ``ai.finding.created`` to the worklist and the study's room,
``notification.created`` to ``user:<user_id>``. Every event carries its facility.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from server.hub import DomainEvent, EventHub

WORKLIST_CHANGED = "worklist.changed"
STATUS_CHANGED = "study.status_changed"
REPORT_SIGNED = "report.signed"
ALERT_RAISED = "alert.raised"
ALERT_UPDATED = "alert.updated"
AI_FINDING_CREATED = "ai.finding.created"
NOTIFICATION_CREATED = "notification.created"

# What the rooms publish for the workflow: {study_uid, study_id?, author, mentions: [usernames],
# text} when a chat message mentions readers, so each gets a persisted notification.
CHAT_MENTIONED = "chat.mentioned"

# What the DICOM gateway publishes and the workflow listens to.
DICOM_INSTANCE_STORED = "dicom.instance.stored"
DICOM_STUDY_STABLE = "dicom.study.stable"
DICOM_MPPS_UPDATED = "dicom.mpps.updated"


# Match "missing or null". The embedded store (nx-27017 0.8.1) drops null rows for a plain
# ``{"field": None}`` nested inside ``$and``/``$or``; ``$in: [None]`` means the same on MongoDB and
# works on both, so every workflow filter uses it.
IS_NULL: dict[str, Any] = {"$in": [None]}


def iso(epoch: float | None) -> str | None:
    """Times cross the wire as ISO 8601 UTC strings; the store keeps epoch floats."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class Publisher:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    async def publish(self, topic: str, data: Mapping[str, Any], facility: str) -> None:
        await self._hub.publish(DomainEvent(topic=topic, data=dict(data), facility=facility))

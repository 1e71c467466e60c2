"""Alerts raised on the hub reach the study room, the worklist and the assignee; actions sync."""

from __future__ import annotations

from typing import Any

import pytest

from server.auth.roles import Role
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub
from server.rooms.channel import MemoryChannel
from server.store.database import Store
from shared.protocol import catalog
from tests.rooms.support import STUDY, Published, add_study, make_rooms, make_user


def alert(version: int = 1, **changes: Any) -> dict[str, Any]:
    return {
        "id": "ai-42",
        "study_uid": STUDY,
        "facility": "main",
        "severity": "critical",
        "status": "open",
        "title": "Suspected intracranial haemorrhage",
        "assigned_to": None,
        "escalation_level": 0,
        "version": version,
        "raised_at": 1.0,
        **changes,
    }


async def test_a_raised_alert_reaches_room_worklist_and_assignee(store: Store) -> None:
    await add_study(store)
    channel = MemoryChannel()
    published = Published()
    rooms = make_rooms(store, channel, publish=published)
    alice, bob = await make_user(store, "alice"), await make_user(store, "bob")
    hub = EventHub()
    hub.subscribe("alert.raised", rooms.on_alert_event)
    hub.subscribe("alert.updated", rooms.on_alert_event)
    await rooms.join(alice, "a", STUDY, None)
    await channel.enter("w", "worklist:main")
    await channel.enter("bob", f"user:{bob.user_id}")

    await hub.publish(DomainEvent("alert.raised", alert(assigned_to=bob.user_id), "main"))
    ops = channel.received("a", "room.op")
    assert [(op["type"], op["data"]["id"]) for op in ops] == [("alert.changed", "ai-42")]
    assert channel.received("w", "alert")[0]["id"] == "ai-42"
    assert channel.received("bob", "alert")[0]["title"].startswith("Suspected")
    for payload in channel.received("w", "alert"):
        catalog().validate_outbound("alert", payload)
    assert [a["id"] for a in (await rooms.snapshot(STUDY))["alerts"]] == ["ai-42"]

    # A repeated or older hub event changes nothing and is not delivered again.
    await hub.publish(DomainEvent("alert.raised", alert(assigned_to=bob.user_id), "main"))
    assert len(channel.received("w", "alert")) == 1

    acked = await rooms.alert_action(alice, "acknowledge", {"alert_id": "ai-42", "version": 1})
    catalog().validate_ack("alert.acknowledge", {"ok": True, **acked})
    assert (acked["alert"]["status"], acked["alert"]["version"]) == ("acknowledged", 2)
    assert acked["alert"]["updated_by"]["username"] == "alice"
    assert published[-1].topic == "alert.updated"
    assert published[-1].data["source"] == "rooms"
    # Our own announcement coming back through the hub is not delivered twice.
    await hub.publish(published[-1])
    assert len(channel.received("w", "alert")) == 2

    with pytest.raises(ApiError) as caught:
        await rooms.alert_action(alice, "resolve", {"alert_id": "ai-42", "version": 1})
    assert caught.value.code == "stale_version"
    assert caught.value.details["current"]["status"] == "acknowledged"
    escalated = await rooms.alert_action(alice, "escalate", {"alert_id": "ai-42", "version": 2})
    assert escalated["alert"]["escalation_level"] == 1
    with pytest.raises(ApiError) as caught:
        await rooms.alert_action(alice, "escalate", {"alert_id": "ai-42", "version": 3})
    assert caught.value.code == "conflict"
    resolved = await rooms.alert_action(
        alice, "resolve", {"alert_id": "ai-42", "version": 3, "note": "called the ward"}
    )
    assert resolved["alert"]["status"] == "resolved"
    assert (await rooms.snapshot(STUDY))["alerts"] == []
    # The workflow changing it later (a newer version) is delivered.
    await hub.publish(DomainEvent("alert.updated", alert(version=5, status="open"), "main"))
    assert channel.received("w", "alert")[-1]["version"] == 5


async def test_alert_actions_need_the_permission_and_the_facility(store: Store) -> None:
    await add_study(store)
    rooms = make_rooms(store)
    await rooms.alerts.accept(alert())
    doctor = await make_user(store, "dr.who", Role.REFERRING_PHYSICIAN)
    foreign = await make_user(store, "far", Role.RADIOLOGIST, facility="elsewhere")
    with pytest.raises(ApiError) as caught:
        await rooms.alert_action(doctor, "acknowledge", {"alert_id": "ai-42", "version": 1})
    assert caught.value.code == "forbidden"
    with pytest.raises(ApiError) as caught:
        await rooms.alert_action(foreign, "acknowledge", {"alert_id": "ai-42", "version": 1})
    assert caught.value.code == "not_found"


async def test_malformed_hub_events_are_refused(store: Store) -> None:
    rooms = make_rooms(store)
    with pytest.raises(ValueError, match="catalog"):
        await rooms.on_alert_event(DomainEvent("alert.raised", {"id": "x"}))
    assert await store["room_alerts"].count_documents({}) == 0

"""Orders become worklist rows and MWL steps; DICOM events move them; the worklist filters,
sorts and pages them; every change is audited and published."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.appkeys import HUB, STORE
from server.auth.roles import Role
from server.http.errors import ApiError
from server.hub import DomainEvent
from server.workflow.query import WorklistQuery
from server.workflow.status import Status
from tests.workflow.conftest import WorkflowHarness


async def stored(h: WorkflowHarness, uid: str, **data: Any) -> None:
    await h.noctis.app[HUB].publish(
        DomainEvent("dicom.instance.stored", {"study_instance_uid": uid, **data}, "main")
    )


async def stable(h: WorkflowHarness, uid: str) -> None:
    await h.noctis.app[HUB].publish(
        DomainEvent("dicom.study.stable", {"study_instance_uid": uid, "received": 2}, "main")
    )


async def mpps(h: WorkflowHarness, status: str, **data: Any) -> None:
    await h.noctis.app[HUB].publish(
        DomainEvent("dicom.mpps.updated", {"mpps_uid": "1.9", "status": status, **data}, "main")
    )


async def indexed(h: WorkflowHarness, uid: str, **q: Any) -> None:
    """What the gateway's index holds for a study before it announces the images."""
    await h.noctis.app[STORE]["dicom_studies"].insert_one(
        {"_id": uid, "facility": "main", "q": q, "modalities": ["MR"], "instances": 1}
    )


async def test_order_creates_row_and_scheduled_step(harness: WorkflowHarness) -> None:
    study = await harness.order(accession_number="ACC1")
    assert study["status"] == "scheduled"
    assert study["accession_number"] == "ACC1"
    assert study["due_at"] is None
    step = await harness.noctis.app[STORE]["scheduled_procedures"].find_one({"_id": "ACC1"})
    assert step is not None
    assert step["status"] == "scheduled"
    assert step["facility"] == "main"
    assert step["accession_number"] == "ACC1"
    assert step["patient"] == {
        "name": "Doe^Jane",
        "name_lc": "doe^jane",
        "id": "P-1",
        "birth_date": "19800101",
        "sex": "F",
    }
    assert step["study_instance_uid"] == study["study_instance_uid"]
    assert step["requested_procedure_description"] == "CT chest with contrast"
    assert step["referring_physician"] == "drref"
    assert step["step"] == {
        "station_ae_title": "CT01",
        "modality": "CT",
        "start_date": "20260302",
        "start_time": "093000",
        "description": "CT chest with contrast",
        "performing_physician": None,
    }
    assert harness.of("worklist.changed")[-1].data["study"]["id"] == study["id"]
    audit = await harness.noctis.app[STORE]["audit"].find_one({"action": "study.create"})
    assert audit is not None
    assert audit["actor"] == "tech"


async def test_order_validation_and_permissions(harness: WorkflowHarness) -> None:
    bad = await harness.call(
        "POST",
        "/api/orders",
        "tech",
        {"patient": {"id": "P"}, "modality": "CT", "requested_procedure": "x"},
        422,
    )
    assert bad["error"]["code"] == "validation_failed"
    naive = await harness.call(
        "POST",
        "/api/orders",
        "tech",
        {
            "patient": {"id": "P", "name": "A^B"},
            "modality": "CT",
            "requested_procedure": "x",
            "scheduled_at": "2026-03-02T09:30:00",
        },
        422,
    )
    assert "time zone" in naive["error"]["message"]
    denied = await harness.call("POST", "/api/orders", "rad1", {}, 403)
    assert denied["error"]["code"] == "forbidden"
    await harness.order(accession_number="DUP")
    dup = await harness.call(
        "POST",
        "/api/orders",
        "tech",
        {
            "accession_number": "DUP",
            "patient": {"id": "P", "name": "A^B"},
            "modality": "CT",
            "requested_procedure": "x",
            "scheduled_at": "2026-03-02T09:30:00Z",
        },
        409,
    )
    assert dup["error"]["code"] == "conflict"
    assert await harness.noctis.app[STORE]["worklist_items"].count_documents({}) == 1


async def test_update_and_cancel_order(harness: WorkflowHarness) -> None:
    await harness.order(accession_number="ACC2")
    updated = await harness.call(
        "PATCH",
        "/api/orders/ACC2",
        "tech",
        {"priority": "stat", "scheduled_station_ae": "CT02", "patient": {"name": "Roe^Ann"}},
    )
    assert updated["priority"] == "stat"
    assert updated["patient_name"] == "Roe^Ann"
    steps = harness.noctis.app[STORE]["scheduled_procedures"]
    step = await steps.find_one({"_id": "ACC2"})
    assert step is not None
    assert step["step"]["station_ae_title"] == "CT02"
    assert step["priority"] == "STAT"
    assert step["patient"]["name"] == "Roe^Ann"
    cancelled = await harness.call("POST", "/api/orders/ACC2/cancel", "tech", {"reason": "dup"})
    assert cancelled["status"] == "cancelled"
    step = await steps.find_one({"_id": "ACC2"})
    assert step is not None
    assert step["status"] == "cancelled"
    again = await harness.call("PATCH", "/api/orders/ACC2", "tech", {"priority": "urgent"}, 409)
    assert again["error"]["code"] == "invalid_transition"
    missing = await harness.call("POST", "/api/orders/NOPE/cancel", "tech", None, 404)
    assert missing["error"]["code"] == "not_found"


async def test_mpps_and_images_follow_the_worklist_uid(harness: WorkflowHarness) -> None:
    study = await harness.order(accession_number="ACC3")
    uid = study["study_instance_uid"]
    await mpps(harness, "IN PROGRESS", study_instance_uids=[uid], accession_numbers=["ACC3"])
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["status"] == "arrived"
    assert row["mpps_status"] == "IN PROGRESS"
    assert row["due_at"] is not None
    await stored(harness, uid, modality="CT", duplicate=False)
    await stored(harness, uid, modality="CT", duplicate=False)
    await stored(harness, uid, modality="CT", duplicate=True)
    await mpps(harness, "COMPLETED", study_instance_uids=[uid], accession_numbers=[])
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["status"] == "unread"
    assert row["images"] == 2
    assert row["mpps_status"] == "COMPLETED"
    await stable(harness, uid)
    transitions = [(e.data["from"], e.data["to"]) for e in harness.of("study.status_changed")]
    assert transitions == [("scheduled", "arrived"), ("arrived", "unread")]


async def test_images_with_their_own_uid_attach_by_accession(harness: WorkflowHarness) -> None:
    study = await harness.order(accession_number="ACC4")
    await indexed(harness, "1.2.3.4", AccessionNumber="ACC4", PatientID="P-1")
    await stored(harness, "1.2.3.4", modality="CT", duplicate=False)
    await stable(harness, "1.2.3.4")
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["status"] == "unread"
    assert row["images"] == 1
    assert row["study_instance_uid"] == "1.2.3.4"
    assert await harness.noctis.app[STORE]["worklist_items"].count_documents({}) == 1


async def test_unscheduled_study_and_malformed_events(harness: WorkflowHarness) -> None:
    await indexed(
        harness, "1.2.840.99", PatientID="X9", PatientName="Poe^Ed", AccessionNumber="NEW1"
    )
    await stored(harness, "1.2.840.99", modality="MR", duplicate=False)
    await stored(harness, "1.2.840.99", modality="MR", duplicate=False)
    await stored(harness, "1.2.840.99", modality="MR", duplicate=False)
    items = harness.noctis.app[STORE]["worklist_items"]
    assert await items.count_documents({}) == 1
    row = await items.find_one({"study_instance_uid": "1.2.840.99"})
    assert row is not None
    assert row["unscheduled"] is True
    assert row["status"] == "arrived"
    # The first image is counted with the row; the others are written together a moment later.
    assert row["images"] == 1
    for _ in range(100):
        row = await items.find_one({"study_instance_uid": "1.2.840.99"})
        if row is not None and row["images"] == 3:
            break
        await asyncio.sleep(0.02)
    assert row is not None
    assert row["images"] == 3
    assert (row["patient_id"], row["patient_name"]) == ("X9", "Poe^Ed")
    assert row["accession_number"] == "NEW1"
    assert row["modality"] == "MR"
    # Not in the index either: still a row, with a generated accession number.
    await stored(harness, "1.2.840.100", modality="CT", duplicate=False)
    other = await items.find_one({"study_instance_uid": "1.2.840.100"})
    assert other is not None
    assert len(other["accession_number"]) <= 16
    await stored(harness, "not a uid")
    await harness.noctis.app[HUB].publish(DomainEvent("dicom.study.stable", {}, "main"))
    await mpps(harness, "BOGUS", study_instance_uids=["1.2.3"])
    await mpps(harness, "COMPLETED", study_instance_uids="1.2.3")
    await mpps(harness, "COMPLETED")
    assert await items.count_documents({}) == 2


async def test_status_endpoint_enforces_table(harness: WorkflowHarness) -> None:
    study = await harness.order()
    sid = study["id"]
    refused = await harness.call(
        "POST", f"/api/studies/{sid}/status", "rad1", {"status": "arrived"}, 403
    )
    assert refused["error"]["code"] == "forbidden"
    invalid = await harness.call(
        "POST", f"/api/studies/{sid}/status", "tech", {"status": "final"}, 409
    )
    assert invalid["error"]["code"] == "invalid_transition"
    ok = await harness.call("POST", f"/api/studies/{sid}/status", "tech", {"status": "arrived"})
    assert ok["status"] == "arrived"
    audit = await harness.noctis.app[STORE]["audit"].find_one({"action": "study.status"})
    assert audit is not None
    assert audit["details"]["to"] == "arrived"


async def test_worklist_filters_sort_and_paging(harness: WorkflowHarness) -> None:
    made = []
    for n, (priority, modality, name) in enumerate(
        [
            ("routine", "CT", "Alpha^Ann"),
            ("stat", "MR", "Bravo^Bob"),
            ("urgent", "CT", "Charlie^Cy"),
            ("stat", "CT", "Delta^Di"),
        ]
    ):
        harness.clock.advance(60)
        made.append(
            await harness.order(
                accession_number=f"W{n}",
                priority=priority,
                modality=modality,
                patient={"id": f"PID{n}", "name": name},
            )
        )
    for study in made:
        await harness.call(
            "POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"}
        )

    async def ids(query: str) -> list[str]:
        body = await harness.call("GET", f"/api/worklist{query}", "rad1")
        return [item["accession_number"] for item in body["items"]]

    assert await ids("") == ["W1", "W3", "W2", "W0"]
    assert await ids("?stat=true") == ["W1", "W3"]
    assert await ids("?modality=CT") == ["W3", "W2", "W0"]
    assert await ids("?q=charlie") == ["W2"]
    assert await ids("?q=pid0") == ["W0"]
    assert await ids("?q=w3") == ["W3"]
    assert await ids("?q=.*") == []
    assert await ids("?limit=2&offset=1") == ["W3", "W2"]
    page = await harness.call("GET", "/api/worklist?limit=2&count=true", "rad1")
    assert (page["total"], page["has_more"]) == (4, True)
    last = await harness.call("GET", "/api/worklist?limit=2&offset=2", "rad1")
    assert (len(last["items"]), last["has_more"]) == (2, False)
    assert "total" not in last
    await harness.call(
        "POST", f"/api/studies/{made[0]['id']}/assign", "admin", {"username": "rad1"}
    )
    assert await ids("?mine=true") == ["W0"]
    assert await ids("?unassigned=true") == ["W1", "W3", "W2"]
    await harness.call("POST", f"/api/studies/{made[1]['id']}/claim", "rad2")
    assert await ids("?unread=true") == ["W3", "W2", "W0"]
    assert await ids("?status=reading") == ["W1"]
    assert await ids("?unread=true&status=reading") == []
    assert await ids("?mine=true&stat=true") == []
    assert await ids("?unassigned=true&stat=true&modality=CT") == ["W3"]
    assert await ids("?since=2026-03-02T00:00:00Z&until=2026-03-03T00:00:00Z") == [
        "W1",
        "W3",
        "W2",
        "W0",
    ]
    assert await ids("?since=2026-03-03T00:00:00Z") == []
    for bad in ("?bogus=1", "?status=nope", "?limit=0", "?since=yesterday", "?stat=maybe"):
        error = await harness.call("GET", f"/api/worklist{bad}", "rad1", status=400)
        assert error["error"]["code"] == "bad_request"


async def test_worklist_is_facility_scoped(harness: WorkflowHarness) -> None:
    await harness.user("tech2", Role.TECHNICIAN, "north")
    await harness.user("rad9", Role.RADIOLOGIST, "north")
    await harness.order()
    north = await harness.order("tech2", accession_number="N1")
    assert north["facility"] == "north"
    body = await harness.call("GET", "/api/worklist", "rad9")
    assert [i["accession_number"] for i in body["items"]] == ["N1"]
    hidden = await harness.call("GET", f"/api/studies/{north['id']}", "rad1", status=404)
    assert hidden["error"]["code"] == "not_found"
    await harness.call("GET", "/api/worklist?facility=north", "rad1", status=403)
    everything = await harness.call("GET", "/api/worklist?facility=*", "admin")
    assert len(everything["items"]) == 2
    denied = await harness.call("GET", "/api/worklist", "drref", status=403)
    assert denied["error"]["code"] == "forbidden"


async def test_overdue_flag_follows_the_clock(harness: WorkflowHarness) -> None:
    study = await harness.order(priority="stat")
    await harness.call("POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"})
    assert (await harness.call("GET", "/api/worklist?overdue=true", "rad1"))["items"] == []
    harness.clock.advance(3601)
    await harness.relogin()
    body = await harness.call("GET", "/api/worklist?overdue=true", "rad1")
    assert [i["id"] for i in body["items"]] == [study["id"]]
    assert body["items"][0]["overdue"] is True


async def test_assignment_notifies_and_validates(harness: WorkflowHarness) -> None:
    study = await harness.order()
    sid = study["id"]
    bad = await harness.call(
        "POST", f"/api/studies/{sid}/assign", "admin", {"username": "tech"}, 422
    )
    assert "not a reader" in bad["error"]["message"]
    await harness.call("POST", f"/api/studies/{sid}/assign", "rad1", {"username": "rad1"}, 403)
    done = await harness.call("POST", f"/api/studies/{sid}/assign", "admin", {"username": "rad2"})
    assert done["assigned_to"] == "rad2"
    notes = await harness.call("GET", "/api/notifications", "rad2")
    assert notes["unread"] == 1
    assert notes["items"][0]["kind"] == "assigned"
    pushed = harness.of("notification.created")
    assert len(pushed) == 1
    await harness.call("POST", f"/api/notifications/{notes['items'][0]['id']}/read", "rad2")
    assert (await harness.call("GET", "/api/notifications", "rad2"))["unread"] == 0
    await harness.call(
        "POST", f"/api/notifications/{notes['items'][0]['id']}/read", "rad1", status=404
    )


async def test_mentions_become_notifications(harness: WorkflowHarness) -> None:
    await harness.noctis.app[HUB].publish(
        DomainEvent(
            "chat.mentioned",
            {
                "study_uid": "1.2.3",
                "author": "rad1",
                "mentions": ["rad2", "rad1", "ghost"],
                "text": "@rad2 look at slice 40",
            },
            "main",
        )
    )
    await harness.noctis.app[HUB].publish(DomainEvent("chat.mentioned", {"mentions": 5}, "main"))
    notes = await harness.call("GET", "/api/notifications", "rad2")
    assert [(n["kind"], n["body"]) for n in notes["items"]] == [
        ("mentioned", "@rad2 look at slice 40")
    ]
    assert (await harness.call("GET", "/api/notifications", "rad1"))["items"] == []
    marked = await harness.call("POST", "/api/notifications/read-all", "rad2")
    assert marked["marked"] == 1


async def test_study_directory_for_the_rooms(harness: WorkflowHarness) -> None:
    study = await harness.order()
    studies = harness.workflow.studies
    assert await studies.study_facility(study["study_instance_uid"]) == "main"
    assert await studies.study_facility("9.9.9") is None


def test_filters_merge_into_one_flat_filter() -> None:
    query = WorklistQuery(
        facilities=("main",),
        username="rad1",
        unread=True,
        overdue=True,
        statuses=(Status.UNREAD, Status.READING),
        stat=True,
        since=1.0,
        until=2.0,
    )
    assert query.mongo_filter(100.0) == {
        "facility": "main",
        "status": {"$in": ["unread"]},
        "due_at": {"$lt": 100.0},
        "priority": "stat",
        "study_at": {"$gte": 1.0, "$lt": 2.0},
    }
    nothing = WorklistQuery(facilities=None, username="x", unread=True, statuses=(Status.FINAL,))
    assert nothing.mongo_filter(0.0) == {"status": {"$in": []}}


async def test_server_changes_survive_churn_people_see_409(harness: WorkflowHarness) -> None:
    study = await harness.order()
    studies = harness.workflow.studies
    stale = await studies.get(study["id"])
    await studies.collection.update_one({"_id": study["id"]}, {"$inc": {"version": 1}})
    with pytest.raises(ApiError) as caught:
        await studies.update_fields(stale, {"body_part": "HEAD"}, actor="tech", action="t")
    assert caught.value.code == "stale_version"
    done = await studies.update_fields(
        stale, {"body_part": "HEAD"}, actor="system", action="t", retry=True
    )
    assert done["body_part"] == "HEAD"
    assert done["version"] == stale["version"] + 2


async def test_step_dates_are_local_to_the_facility(harness: WorkflowHarness) -> None:
    bad = await harness.call(
        "PUT",
        "/api/facilities/main/profile",
        "admin",
        {"name": "M", "timezone": "Mars/Olympus"},
        422,
    )
    assert "time zone" in bad["error"]["message"]
    await harness.call(
        "PUT", "/api/facilities/main/profile", "admin", {"name": "M", "timezone": "Europe/Paris"}
    )
    await harness.call("PUT", "/api/facilities/main/profile", "tech", {"name": "M"}, status=403)
    await harness.order(accession_number="TZ1", scheduled_at="2026-03-02T23:30:00Z")
    step = await harness.noctis.app[STORE]["scheduled_procedures"].find_one({"_id": "TZ1"})
    assert step is not None
    assert (step["step"]["start_date"], step["step"]["start_time"]) == ("20260303", "003000")

"""One study from order to signed report, and one AI finding from intake to acknowledgement,
through the real app: HTTP for people and engines, hub events for what the gateway reports."""

from __future__ import annotations

import io

from pydicom import dcmread
from pypdf import PdfReader

from server.appkeys import HUB, STORE
from server.dicom.archive import ARCHIVE
from server.hub import DomainEvent
from tests.workflow.conftest import WorkflowHarness


async def test_order_to_signed_report_and_ai_alert(harness: WorkflowHarness) -> None:
    hub = harness.noctis.app[HUB]
    study = await harness.order(accession_number="E2E1", priority="routine")
    uid = study["study_instance_uid"]
    step = await harness.noctis.app[STORE]["scheduled_procedures"].find_one({"_id": "E2E1"})
    assert step is not None
    assert (step["status"], step["study_instance_uid"]) == ("scheduled", uid)

    # The modality performs the step and sends images.
    await hub.publish(
        DomainEvent(
            "dicom.mpps.updated",
            {
                "mpps_uid": "1.2.9",
                "status": "IN PROGRESS",
                "study_instance_uids": [uid],
                "accession_numbers": ["E2E1"],
            },
            "main",
        )
    )
    for n in range(3):
        await hub.publish(
            DomainEvent(
                "dicom.instance.stored",
                {
                    "study_instance_uid": uid,
                    "sop_instance_uid": f"{uid}.{n}",
                    "modality": "CT",
                    "duplicate": False,
                },
                "main",
            )
        )
    await hub.publish(
        DomainEvent(
            "dicom.mpps.updated",
            {"mpps_uid": "1.2.9", "status": "COMPLETED", "study_instance_uids": [uid]},
            "main",
        )
    )
    queue = await harness.call("GET", "/api/worklist?unread=true", "rad1")
    assert [i["accession_number"] for i in queue["items"]] == ["E2E1"]

    # An AI engine flags a bleed: the study jumps to STAT and an alert goes out.
    engine = await harness.call("POST", "/api/ai/engines", "admin", {"name": "bleednet"}, 201)
    response = await harness.noctis.client.post(
        "/api/ai/findings",
        headers={"X-API-Key": engine["api_key"]},
        json={
            "study_instance_uid": uid,
            "finding_type": "haemorrhage",
            "severity": "critical",
            "confidence": 0.91,
            "model": {"name": "bleednet", "version": "3"},
        },
    )
    assert response.status == 201
    alert_id = (await response.json())["alert_id"]
    stat = await harness.call("GET", "/api/worklist?stat=true", "rad1")
    assert [i["accession_number"] for i in stat["items"]] == ["E2E1"]
    assert stat["items"][0]["open_alerts"] == 1
    acked = await harness.call("POST", f"/api/alerts/{alert_id}/acknowledge", "rad1", {})
    assert acked["status"] == "acknowledged"

    # One reader claims, the report is signed, the referring physician reads it.
    await harness.call("POST", f"/api/studies/{study['id']}/claim", "rad1")
    await harness.call("POST", f"/api/studies/{study['id']}/claim", "rad2", status=409)
    version = await harness.call(
        "POST",
        f"/api/studies/{study['id']}/report/sign",
        "rad1",
        {"text": "IMPRESSION: Acute subdural haematoma, 6 mm."},
        201,
    )
    pdf = await harness.noctis.client.get(
        f"/api/studies/{study['id']}/reports/1/pdf", headers=harness.auth("drref")
    )
    assert pdf.status == 200
    text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(await pdf.read())).pages)
    assert "Acute subdural haematoma, 6 mm." in " ".join(text.split())
    sr = dcmread(
        io.BytesIO(await harness.noctis.app[ARCHIVE].instance_bytes(version["sr_sop_instance_uid"]))
    )
    assert sr.StudyInstanceUID == uid
    assert sr.ContentSequence[0].TextValue == "IMPRESSION: Acute subdural haematoma, 6 mm."

    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert (row["status"], row["priority"], row["images"]) == ("final", "stat", 3)
    path = [(e.data["from"], e.data["to"]) for e in harness.of("study.status_changed")]
    assert path == [
        ("scheduled", "arrived"),
        ("arrived", "unread"),
        ("unread", "reading"),
        ("reading", "final"),
    ]
    topics = set(harness.topics())
    assert {
        "worklist.changed",
        "study.status_changed",
        "alert.raised",
        "alert.updated",
        "ai.finding.created",
        "report.signed",
        "notification.created",
    } <= topics
    assert all(e.facility == "main" for e in harness.events if not e.topic.startswith("dicom."))

"""Signing freezes the text into an immutable, hashed version; addenda append; the PDF carries the
text; the SR round-trips through the archive and DICOM readers; referring physicians see only
their own studies' final reports."""

from __future__ import annotations

import asyncio
import base64
import io
from asyncio.subprocess import PIPE
from typing import Any

import pytest
from PIL import Image
from pydicom import dcmread
from pypdf import PdfReader

from server.appkeys import STORE
from server.auth.guard import AUTH_SERVICE
from server.dicom.archive import ARCHIVE
from server.workflow.reports import content_hash
from server.workflow.sr import BASIC_TEXT_SR
from tests.support.programs import require_program
from tests.workflow.conftest import WorkflowHarness

REPORT = (
    "FINDINGS: No focal consolidation. No pleural effusion.\n"
    "IMPRESSION: Normal chest CT; Ødegård sign absent."
)


async def claimed_study(h: WorkflowHarness, reader: str = "rad1", **overrides: Any) -> str:
    study = await h.order(**overrides)
    sid = str(study["id"])
    await h.call("POST", f"/api/studies/{sid}/status", "tech", {"status": "unread"})
    await h.call("POST", f"/api/studies/{sid}/claim", reader)
    return sid


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


async def test_sign_freezes_hashes_and_finalises(harness: WorkflowHarness) -> None:
    sid = await claimed_study(harness)
    version = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201
    )
    assert version["version"] == 1
    assert version["kind"] == "report"
    assert version["signer"] == "rad1"
    stored = await harness.noctis.app[STORE]["reports"].find_one({"study_id": sid})
    assert stored is not None
    assert stored["text"] == REPORT
    assert stored["sha256"] == version["sha256"] == content_hash(stored)
    row = await harness.call("GET", f"/api/studies/{sid}", "rad1")
    assert row["status"] == "final"
    assert row["claimed_by"] is None
    signed = harness.of("report.signed")
    assert [e.data["version"] for e in signed] == [1]
    again = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": "changed"}, 409
    )
    assert again["error"]["code"] == "invalid_transition"
    assert await harness.noctis.app[STORE]["reports"].count_documents({}) == 1
    # The referring physician was told.
    notes = await harness.call("GET", "/api/notifications", "drref")
    assert [n["kind"] for n in notes["items"]] == ["report_signed"]


async def test_only_the_claimant_or_an_audited_admin_signs(harness: WorkflowHarness) -> None:
    sid = await claimed_study(harness)
    other = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad2", {"text": REPORT}, 403
    )
    assert other["error"]["code"] == "already_claimed"
    empty = await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", {}, 422)
    assert "no report text" in empty["error"]["message"]
    await harness.call("POST", f"/api/studies/{sid}/report/sign", "tech", {"text": "x"}, 403)
    await harness.call("POST", f"/api/studies/{sid}/report/sign", "admin", {"text": REPORT}, 201)
    audit = await harness.noctis.app[STORE]["audit"].find_one(
        {"action": "report.report.sign.override"}
    )
    assert audit is not None
    assert audit["actor"] == "admin"
    unclaimed = await claimed_study(harness, accession_number="U2")
    await harness.call("POST", f"/api/studies/{unclaimed}/release", "rad1")
    await harness.call("POST", f"/api/studies/{unclaimed}/claim", "rad2")
    await harness.call("POST", f"/api/studies/{unclaimed}/release", "rad2")
    bare = await harness.call(
        "POST", f"/api/studies/{unclaimed}/report/sign", "rad2", {"text": REPORT}, 409
    )
    assert bare["error"]["code"] in {"claim_required", "invalid_transition"}


async def test_addenda_append_and_amend(harness: WorkflowHarness) -> None:
    sid = await claimed_study(harness)
    await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201)
    first = await harness.call(
        "POST", f"/api/studies/{sid}/report/addenda", "rad2", {"text": "Addendum one."}, 201
    )
    second = await harness.call(
        "POST", f"/api/studies/{sid}/report/addenda", "rad1", {"text": "Addendum two."}, 201
    )
    assert (first["version"], second["version"]) == (2, 3)
    assert first["kind"] == second["kind"] == "addendum"
    row = await harness.call("GET", f"/api/studies/{sid}", "rad1")
    assert row["status"] == "amended"
    listed = await harness.call("GET", f"/api/studies/{sid}/reports", "rad1")
    assert [r["text"] for r in listed["reports"]] == [REPORT, "Addendum one.", "Addendum two."]
    early = await harness.order(accession_number="EARLY")
    refused = await harness.call(
        "POST", f"/api/studies/{early['id']}/report/addenda", "rad1", {"text": "x"}, 409
    )
    assert refused["error"]["code"] == "invalid_transition"


async def test_pdf_contains_the_report_and_branding(harness: WorkflowHarness) -> None:
    logo = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(logo, format="PNG")
    await harness.call(
        "PUT",
        "/api/facilities/main/profile",
        "admin",
        {"name": "Saint Example Hospital", "logo_png": base64.b64encode(logo.getvalue()).decode()},
    )
    bad_logo = await harness.call(
        "PUT",
        "/api/facilities/main/profile",
        "admin",
        {"name": "X", "logo_png": base64.b64encode(b"\x89PNG\r\n\x1a\nnope").decode()},
        422,
    )
    assert bad_logo["error"]["code"] == "validation_failed"
    sid = await claimed_study(harness)
    await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201)
    await harness.call(
        "POST", f"/api/studies/{sid}/report/addenda", "rad1", {"text": "Comparison added."}, 201
    )
    response = await harness.noctis.client.get(
        f"/api/studies/{sid}/reports/2/pdf", headers=harness.auth("drref")
    )
    assert response.status == 200
    assert response.content_type == "application/pdf"
    text = pdf_text(await response.read())
    assert "Saint Example Hospital" in text
    assert "No focal consolidation. No pleural effusion." in text
    assert "Comparison added." in text
    assert "Doe Jane" in text
    assert "Electronically signed by Rad1" in text
    first_only = await harness.noctis.client.get(
        f"/api/studies/{sid}/reports/1/pdf", headers=harness.auth("rad1")
    )
    assert "Comparison added." not in pdf_text(await first_only.read())
    missing = await harness.call("GET", f"/api/studies/{sid}/reports/7/pdf", "rad1", status=404)
    assert missing["error"]["code"] == "not_found"


async def test_sr_round_trips_through_the_archive(harness: WorkflowHarness) -> None:
    sid = await claimed_study(harness)
    version = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201
    )
    row = await harness.call("GET", f"/api/studies/{sid}", "rad1")
    data = await harness.noctis.app[ARCHIVE].instance_bytes(version["sr_sop_instance_uid"])
    ds = dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == BASIC_TEXT_SR
    assert ds.SOPInstanceUID == version["sr_sop_instance_uid"]
    assert ds.StudyInstanceUID == row["study_instance_uid"]
    assert ds.AccessionNumber == row["accession_number"]
    assert str(ds.PatientName) == "Doe^Jane"
    assert ds.Modality == "SR"
    assert ds.VerificationFlag == "VERIFIED"
    assert ds.VerifyingObserverSequence[0].VerifyingObserverName == "Rad1"
    assert ds.ContentSequence[0].TextValue == REPORT
    addendum = await harness.call(
        "POST", f"/api/studies/{sid}/report/addenda", "rad1", {"text": "More."}, 201
    )
    second = dcmread(
        io.BytesIO(
            await harness.noctis.app[ARCHIVE].instance_bytes(addendum["sr_sop_instance_uid"])
        )
    )
    assert second.SeriesInstanceUID == ds.SeriesInstanceUID
    assert [item.TextValue for item in second.ContentSequence] == [REPORT, "More."]
    assert second.ContentSequence[1].ConceptNameCodeSequence[0].CodeMeaning == "Addendum"


async def test_dcmdump_reads_the_sr(harness: WorkflowHarness, tmp_path: Any) -> None:
    dcmdump = require_program("dcmdump")
    sid = await claimed_study(harness)
    version = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201
    )
    path = tmp_path / "sr.dcm"
    path.write_bytes(
        await harness.noctis.app[ARCHIVE].instance_bytes(version["sr_sop_instance_uid"])
    )
    process = await asyncio.create_subprocess_exec(
        dcmdump, "+U8", str(path), stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert "BasicTextSRStorage" in out.decode()
    assert "No focal consolidation" in out.decode()
    assert b"E:" not in err


async def test_referring_physicians_see_only_their_final_reports(
    harness: WorkflowHarness,
) -> None:
    mine = await claimed_study(harness, accession_number="MINE")
    theirs = await claimed_study(harness, accession_number="THEIRS", referring_physician="drother")
    for sid in (mine, theirs):
        await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201)
    pending = await claimed_study(harness, accession_number="PENDING")
    ok = await harness.call("GET", f"/api/studies/{mine}/reports", "drref")
    assert len(ok["reports"]) == 1
    hidden = await harness.call("GET", f"/api/studies/{theirs}/reports", "drref", status=404)
    assert hidden["error"]["code"] == "not_found"
    pdf = await harness.noctis.client.get(
        f"/api/studies/{theirs}/reports/1/pdf", headers=harness.auth("drref")
    )
    assert pdf.status == 404
    listing = await harness.call("GET", "/api/reports", "drref")
    assert [i["accession_number"] for i in listing["items"]] == ["MINE"]
    assert pending not in [i["id"] for i in listing["items"]]
    await harness.call("POST", f"/api/studies/{theirs}/invite", "rad1", {"username": "drref"})
    invited = await harness.call("GET", f"/api/studies/{theirs}/reports", "drref")
    assert len(invited["reports"]) == 1
    listing = await harness.call("GET", "/api/reports", "drref")
    assert sorted(i["accession_number"] for i in listing["items"]) == ["MINE", "THEIRS"]
    denied = await harness.call("GET", f"/api/studies/{mine}", "drref", status=403)
    assert denied["error"]["code"] == "forbidden"
    audit = await harness.noctis.app[STORE]["audit"].count_documents(
        {"action": "report.read", "actor": "drref"}
    )
    assert audit == 2


async def test_templates_and_macros(harness: WorkflowHarness) -> None:
    await harness.call(
        "POST",
        "/api/report-templates",
        "rad1",
        {
            "name": "CT chest",
            "modality": "CT",
            "body_part": "CHEST",
            "sections": [{"title": "Clinical information"}, {"title": "Findings"}],
        },
        201,
    )
    await harness.call(
        "POST",
        "/api/report-templates",
        "rad1",
        {"name": "Generic", "sections": [{"title": "Impression"}]},
        201,
    )
    ct = await harness.call("GET", "/api/report-templates?modality=CT&body_part=CHEST", "rad1")
    assert [t["name"] for t in ct["templates"]] == ["CT chest", "Generic"]
    mr = await harness.call("GET", "/api/report-templates?modality=MR", "rad1")
    assert [t["name"] for t in mr["templates"]] == ["Generic"]
    await harness.call(
        "POST",
        "/api/report-macros",
        "admin",
        {"name": "nad", "text": "Shared.", "shared": True},
        201,
    )
    await harness.call(
        "POST", "/api/report-macros", "rad1", {"name": "nad", "text": "No acute disease."}, 201
    )
    await harness.call(
        "POST", "/api/report-macros", "rad1", {"name": "x", "text": "y", "shared": True}, 403
    )
    dup = await harness.call(
        "POST", "/api/report-macros", "rad1", {"name": "nad", "text": "again"}, 409
    )
    assert dup["error"]["code"] == "conflict"
    mine = await harness.call(
        "POST", "/api/report-macros/expand", "rad1", {"text": "Impression: .nad (see .unknown)"}
    )
    assert mine["text"] == "Impression: No acute disease. (see .unknown)"
    theirs = await harness.call(
        "POST", "/api/report-macros/expand", "rad2", {"text": "Impression: .nad"}
    )
    assert theirs["text"] == "Impression: Shared."


@pytest.mark.parametrize("body", [{"text": ""}, {"text": "x", "extra": 1}, {"text": 5}])
async def test_sign_body_is_validated(harness: WorkflowHarness, body: Any) -> None:
    sid = await claimed_study(harness)
    error = await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", body, 422)
    assert error["error"]["code"] == "validation_failed"
    assert await harness.noctis.app[STORE]["reports"].count_documents({}) == 0


class DownArchive:
    """An archive that refuses the first ``failures`` objects, then keeps what it gets."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.kept: list[tuple[bytes, str]] = []

    async def ingest(self, data: bytes, facility: str) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("archive unavailable")
        self.kept.append((data, facility))
        return None


async def test_sr_export_is_retried_until_the_archive_takes_it(harness: WorkflowHarness) -> None:
    archive = DownArchive(failures=2)
    harness.workflow.reports.archive = archive
    sid = await claimed_study(harness)
    version = await harness.call(
        "POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201
    )
    exports = harness.noctis.app[STORE]["report_exports"]
    pending = await exports.find_one({"_id": version["sr_sop_instance_uid"]})
    assert pending is not None
    assert "archive unavailable" in pending["last_error"]
    assert (await harness.workflow.tick())["reports_exported"] == 0
    harness.clock.advance(61)
    assert (await harness.workflow.tick())["reports_exported"] == 0
    assert archive.kept == []
    harness.clock.advance(3600)
    assert (await harness.workflow.tick())["reports_exported"] == 1
    assert await exports.count_documents({}) == 0
    data, facility = archive.kept[0]
    assert facility == "main"
    ds = dcmread(io.BytesIO(data))
    assert ds.SOPInstanceUID == version["sr_sop_instance_uid"]
    assert ds.ContentSequence[0].TextValue == REPORT


async def test_a_room_invitation_also_opens_the_reports(harness: WorkflowHarness) -> None:
    sid = await claimed_study(harness, accession_number="ROOM1")
    await harness.call("POST", f"/api/studies/{sid}/report/sign", "rad1", {"text": REPORT}, 201)
    await harness.call("GET", f"/api/studies/{sid}/reports", "drother", status=404)
    assert (await harness.call("GET", "/api/reports", "drother"))["items"] == []
    row = await harness.call("GET", f"/api/studies/{sid}", "rad1")
    other = await harness.noctis.app[AUTH_SERVICE].users.by_username("drother")
    assert other is not None
    # What rooms/ stores when a reader invites someone into the study room.
    await harness.noctis.app[STORE]["study_invitations"].insert_one(
        {"study_uid": row["study_instance_uid"], "user_id": other.id, "invited_by": "x", "at": 0.0}
    )
    opened = await harness.call("GET", f"/api/studies/{sid}/reports", "drother")
    assert [r["version"] for r in opened["reports"]] == [1]
    listed = await harness.call("GET", "/api/reports", "drother")
    assert [i["accession_number"] for i in listed["items"]] == ["ROOM1"]
    # The physician who ordered it sees it once, not twice.
    mine = await harness.call("GET", "/api/reports", "drref")
    assert [i["accession_number"] for i in mine["items"]] == ["ROOM1"]

"""AI findings sent as a DICOM SR: all findings stored, or, for anything malformed, a clear error
and nothing stored at all."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from server.appkeys import BLOBS, HUB, STORE
from server.hub import DomainEvent
from server.workflow.ai_sr import SrError, read_findings
from tests.workflow.conftest import WorkflowHarness

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def code(value: str, meaning: str, scheme: str = "99AI") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def content(value_type: str, name: str, **attrs: Any) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([code(name.upper()[:16], name)])
    for key, value in attrs.items():
        setattr(item, key, value)
    return item


def finding_item(
    kind: str, severity: str | None, confidence: float | None, points: bool = False
) -> Dataset:
    item = content("CODE", "Finding", ConceptCodeSequence=Sequence([code("F1", kind)]))
    children = []
    if severity is not None:
        children.append(
            content("CODE", "Severity", ConceptCodeSequence=Sequence([code("S", severity)]))
        )
    if confidence is not None:
        measured = Dataset()
        measured.NumericValue = str(confidence)
        measured.MeasurementUnitsCodeSequence = Sequence([code("1", "no units", "UCUM")])
        children.append(content("NUM", "Confidence", MeasuredValueSequence=Sequence([measured])))
    if points:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = "1.2.3.4.5"
        ref.ReferencedFrameNumber = 3
        image = content("IMAGE", "Image", ReferencedSOPSequence=Sequence([ref]))
        scoord = content("SCOORD", "Outline", GraphicType="POLYLINE", GraphicData=[1, 2, 3, 4])
        scoord.ContentSequence = Sequence([image])
        children.append(scoord)
    item.ContentSequence = Sequence(children)
    return item


def make_sr(
    study_uid: str,
    findings: list[Dataset],
    sop_class: str = COMPREHENSIVE_SR,
    model: str = "bleednet",
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    if model:
        ds.ManufacturerModelName = model
        ds.SoftwareVersions = "4.2"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([code("126000", "Imaging Measurement Report", "DCM")])
    container = content("CONTAINER", "Findings")
    container.ContentSequence = Sequence(findings)
    ds.ContentSequence = Sequence([container])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


async def setup_study(h: WorkflowHarness) -> tuple[str, dict[str, Any]]:
    key = (await h.call("POST", "/api/ai/engines", "admin", {"name": "bleednet"}, 201))["api_key"]
    study = await h.order()
    await h.call("POST", f"/api/studies/{study['id']}/status", "tech", {"status": "unread"})
    return str(key), study


async def post_sr(
    h: WorkflowHarness, key: str, data: bytes, content_type: str = "application/dicom"
) -> tuple[int, Any]:
    response = await h.noctis.client.post(
        "/api/ai/sr", data=data, headers={"X-API-Key": key, "Content-Type": content_type}
    )
    return response.status, await response.json()


def test_reader_extracts_findings() -> None:
    data = make_sr(
        "1.2.3",
        [
            finding_item("Pneumothorax", "critical", 0.8, points=True),
            finding_item("Nodule", "info", 0.3),
        ],
    )
    parsed = read_findings(data)
    assert [b["finding_type"] for b in parsed.bodies] == ["pneumothorax", "nodule"]
    first = parsed.bodies[0]
    assert first["location"] == {
        "points": [[1.0, 2.0], [3.0, 4.0]],
        "sop_instance_uid": "1.2.3.4.5",
        "frame": 2,
    }
    assert first["model"] == {"name": "bleednet", "version": "4.2"}
    assert first["confidence"] == 0.8


async def test_sr_findings_are_stored_and_alert(harness: WorkflowHarness) -> None:
    key, study = await setup_study(harness)
    data = make_sr(
        study["study_instance_uid"],
        [
            finding_item("Haemorrhage", "critical", 0.9, points=True),
            finding_item("Nodule", "info", 0.2),
        ],
    )
    status, body = await post_sr(harness, key, data)
    assert status == 201, body
    assert [f["finding_type"] for f in body["findings"]] == ["haemorrhage", "nodule"]
    assert len(harness.of("alert.raised")) == 1
    row = await harness.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert row["priority"] == "stat"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("garbage", "Not a readable DICOM file"),
        ("not-sr", "is not a Structured Report"),
        ("second-finding-bad", "finding 2"),
        ("confidence-out-of-range", "finding 1"),
        ("no-findings", "no Finding items"),
        ("no-model", "ManufacturerModelName"),
        ("unknown-study", "No study"),
        ("bad-severity", "finding 1"),
    ],
)
async def test_malformed_sr_stores_nothing(
    harness: WorkflowHarness, case: str, message: str
) -> None:
    key, study = await setup_study(harness)
    uid = study["study_instance_uid"]
    good = finding_item("Haemorrhage", "critical", 0.9)
    data = {
        "garbage": b"DICM but not really" * 10,
        "not-sr": make_sr(uid, [good], sop_class="1.2.840.10008.5.1.4.1.1.2"),
        "second-finding-bad": make_sr(uid, [good, finding_item("Nodule", None, 0.2)]),
        "confidence-out-of-range": make_sr(uid, [finding_item("Nodule", "info", 7.0)]),
        "no-findings": make_sr(uid, []),
        "no-model": make_sr(uid, [good], model=""),
        "unknown-study": make_sr("9.8.7.6", [good]),
        "bad-severity": make_sr(uid, [finding_item("Nodule", "apocalyptic", 0.5)]),
    }[case]
    status, body = await post_sr(harness, key, data)
    assert status == 422, body
    assert body["error"]["code"] in {"validation_failed", "unknown_study"}
    assert message in body["error"]["message"]
    store = harness.noctis.app[STORE]
    assert await store["ai_findings"].count_documents({}) == 0
    assert await store["alerts"].count_documents({}) == 0
    assert not harness.of("ai.finding.created")


async def test_sr_needs_key_and_dicom_type(harness: WorkflowHarness) -> None:
    key, study = await setup_study(harness)
    data = make_sr(study["study_instance_uid"], [finding_item("Nodule", "info", 0.2)])
    status, body = await post_sr(harness, "nxk_nope", data)
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    status, body = await post_sr(harness, key, data, "application/octet-stream")
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


def test_reader_refuses_deep_trees() -> None:
    item = finding_item("Nodule", "info", 0.2)
    for _ in range(12):
        wrapper = content("CONTAINER", "Group")
        wrapper.ContentSequence = Sequence([item])
        item = wrapper
    with pytest.raises(SrError, match="deeper"):
        read_findings(make_sr("1.2.3", [item]))


async def store_from_ae(h: WorkflowHarness, calling_ae: str, data: bytes, sop_class: str) -> str:
    """What the gateway does for a C-STORE: index, keep the blob, announce on the hub."""
    sop_uid = generate_uid()
    blob = f"test/{sop_uid}.dcm"
    await h.noctis.app[BLOBS].put(blob, data)
    await h.noctis.app[STORE]["dicom_instances"].insert_one(
        {"_id": sop_uid, "facility": "main", "sop_class_uid": sop_class, "blob": blob}
    )
    hub = h.noctis.app[HUB]
    upload = {"upload_id": f"u-{sop_uid}"}
    await hub.publish(
        DomainEvent("dicom.association.opened", {**upload, "calling_ae": calling_ae}, "main")
    )
    await hub.publish(
        DomainEvent(
            "dicom.instance.stored",
            {**upload, "sop_instance_uid": sop_uid, "duplicate": False},
            "main",
        )
    )
    await hub.publish(DomainEvent("dicom.association.closed", upload, "main"))
    return sop_uid


async def test_sr_by_c_store_from_a_registered_ae(harness: WorkflowHarness) -> None:
    await harness.call(
        "POST", "/api/ai/engines", "admin", {"name": "lungnet", "ae_title": "LUNGAI"}, 201
    )
    dup = await harness.call(
        "POST", "/api/ai/engines", "admin", {"name": "other", "ae_title": "LUNGAI"}, 409
    )
    assert dup["error"]["code"] == "conflict"
    study = await harness.order()
    uid = study["study_instance_uid"]
    good = make_sr(uid, [finding_item("Nodule", "warning", 0.7)])
    await store_from_ae(harness, "LUNGAI", good, COMPREHENSIVE_SR)
    findings = await harness.call("GET", f"/api/studies/{study['id']}/findings", "rad1")
    assert [(f["engine"], f["finding_type"]) for f in findings["findings"]] == [
        ("lungnet", "nodule")
    ]
    # The same SR from an AE that is no engine is just an object in the archive.
    await store_from_ae(harness, "MODALITY1", good, COMPREHENSIVE_SR)
    # A malformed SR from the engine: audited with the reason, nothing stored.
    bad = make_sr(uid, [finding_item("Nodule", None, 0.7)])
    sop_uid = await store_from_ae(harness, "LUNGAI", bad, COMPREHENSIVE_SR)
    store = harness.noctis.app[STORE]
    assert await store["ai_findings"].count_documents({}) == 1
    audit = await store["audit"].find_one({"action": "ai.sr", "outcome": "failure"})
    assert audit is not None
    assert audit["target"] == sop_uid
    assert "no Severity" in audit["details"]["reason"]

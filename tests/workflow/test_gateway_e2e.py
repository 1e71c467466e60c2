"""The whole path over real DICOM associations: an order answered by the Modality Worklist SCP,
MPPS from the modality, images by C-STORE, a claim and a signature over HTTP, the report SR back
in the archive and found by C-FIND; and an AI engine's SR by C-STORE becoming a live alert."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from server.app import AppOptions, build_app
from server.appkeys import HUB
from server.auth.roles import Role
from server.config import Settings
from server.dicom.keys import DICOM_OPTIONS, GATEWAY_PORT, DicomOptions
from server.hub import ALL_TOPICS, DomainEvent
from tests.conftest import Noctis
from tests.dicom.scu import associate, in_thread, make_ae, store
from tests.dicom.synthetic import ct_series
from tests.support.clock import MovableClock
from tests.workflow.conftest import START, WorkflowHarness
from tests.workflow.test_ai_sr import COMPREHENSIVE_SR, finding_item, make_sr

MWL_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def find(port: int, model: str, identifier: Dataset) -> list[Dataset]:
    ae = make_ae("CT01")
    ae.add_requested_context(model)
    assoc = associate(ae, port)
    assert assoc.is_established
    found: list[Dataset] = []
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            if status and int(status.Status) == 0xFF00 and answer is not None:
                found.append(answer)
    finally:
        assoc.release()
    return found


def perform(port: int, study_uid: str, accession: str) -> tuple[int, int]:
    ae = make_ae("CT01")
    ae.add_requested_context(MPPS)
    assoc = associate(ae, port)
    mpps_uid = generate_uid()
    attrs = Dataset()
    attrs.PerformedProcedureStepStatus = "IN PROGRESS"
    ref = Dataset()
    ref.StudyInstanceUID = study_uid
    ref.AccessionNumber = accession
    attrs.ScheduledStepAttributesSequence = [ref]
    created, _ = assoc.send_n_create(attrs, MPPS, mpps_uid)
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    completed, _ = assoc.send_n_set(done, MPPS, mpps_uid)
    assoc.release()
    return int(created.Status), int(completed.Status)


class Gateway(WorkflowHarness):
    port: int = 0
    arrived: asyncio.Event

    async def wait_for(self, topic: str, count: int = 1, within: float = 15.0) -> None:
        async def until() -> None:
            while len(self.of(topic)) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), within)


@pytest.fixture
async def gateway(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    settings: Settings,
) -> Gateway:
    clock = MovableClock(START)
    app = build_app(
        replace(settings, dicom_enabled=True, dicom_port=0),
        AppOptions(clock=clock, bootstrap_admin=False),
    )
    app[DICOM_OPTIONS] = DicomOptions(stable_after_s=0.2)
    harness = Gateway(noctis=Noctis(app=app, client=await aiohttp_client(app)), clock=clock)
    harness.port = app[GATEWAY_PORT]
    harness.arrived = asyncio.Event()

    async def record(event: DomainEvent) -> None:
        harness.events.append(event)
        harness.arrived.set()

    app[HUB].subscribe(ALL_TOPICS, record)
    for name, role in [
        ("admin", Role.ADMIN),
        ("tech", Role.TECHNICIAN),
        ("rad1", Role.RADIOLOGIST),
        ("rad2", Role.RADIOLOGIST),
        ("drref", Role.REFERRING_PHYSICIAN),
    ]:
        await harness.user(name, role)
    return harness


async def test_order_mwl_mpps_images_claim_sign_sr(gateway: Gateway) -> None:
    study = await gateway.order(accession_number="GW1", scheduled_station_ae="CT01")

    # The modality asks the worklist for today's CT steps on its station.
    identifier = Dataset()
    identifier.PatientName = ""
    identifier.PatientID = ""
    identifier.AccessionNumber = ""
    identifier.StudyInstanceUID = ""
    item = Dataset()
    item.Modality = "CT"
    item.ScheduledStationAETitle = "CT01"
    item.ScheduledProcedureStepStartDate = "20260302"
    identifier.ScheduledProcedureStepSequence = [item]
    answers = await in_thread(find, gateway.port, MWL_FIND, identifier)
    assert [str(a.AccessionNumber) for a in answers] == ["GW1"]
    assert str(answers[0].PatientName) == "Doe^Jane"
    uid = str(answers[0].StudyInstanceUID)
    assert uid == study["study_instance_uid"]

    # It performs the step and sends the images it was told to make.
    assert await in_thread(perform, gateway.port, uid, "GW1") == (0, 0)
    series = ct_series(4, accession="GW1", study_uid=uid, patient_id="P-1")
    assert await in_thread(store, gateway.port, series.datasets) == [0, 0, 0, 0]
    await gateway.wait_for("dicom.study.stable")
    row = await gateway.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert (row["status"], row["images"], row["mpps_status"]) == ("unread", 4, "COMPLETED")

    # One reader claims and signs; the referring physician gets the report.
    await gateway.call("POST", f"/api/studies/{study['id']}/claim", "rad1")
    await gateway.call("POST", f"/api/studies/{study['id']}/claim", "rad2", status=409)
    version = await gateway.call(
        "POST",
        f"/api/studies/{study['id']}/report/sign",
        "rad1",
        {"text": "IMPRESSION: No acute findings."},
        201,
    )
    notes = await gateway.call("GET", "/api/notifications", "drref")
    assert [n["kind"] for n in notes["items"]] == ["report_signed"]

    # Other systems find the report SR in the study by C-FIND.
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    series_found = await in_thread(find, gateway.port, STUDY_ROOT_FIND, query)
    assert sorted(str(s.Modality) for s in series_found) == ["CT", "SR"]
    query.QueryRetrieveLevel = "IMAGE"
    query.Modality = "SR"
    query.SeriesInstanceUID = next(
        str(s.SeriesInstanceUID) for s in series_found if s.Modality == "SR"
    )
    query.SOPInstanceUID = ""
    del query.Modality
    images = await in_thread(find, gateway.port, STUDY_ROOT_FIND, query)
    assert [str(i.SOPInstanceUID) for i in images] == [version["sr_sop_instance_uid"]]
    row = await gateway.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert (row["status"], row["images"]) == ("final", 4)


async def test_ai_sr_by_c_store_raises_a_live_alert(gateway: Gateway) -> None:
    await gateway.call(
        "POST", "/api/ai/engines", "admin", {"name": "bleednet", "ae_title": "BLEEDAI"}, 201
    )
    study = await gateway.order(accession_number="GW2")
    uid = study["study_instance_uid"]
    series = ct_series(2, accession="GW2", study_uid=uid, patient_id="P-1")
    assert await in_thread(store, gateway.port, series.datasets) == [0, 0]
    sr = dcmread(io.BytesIO(make_sr(uid, [finding_item("Haemorrhage", "critical", 0.9)])))
    assert str(sr.SOPClassUID) == COMPREHENSIVE_SR
    assert await in_thread(store, gateway.port, [sr], "BLEEDAI") == [0]
    await gateway.wait_for("alert.raised")
    alert = gateway.of("alert.raised")[0].data
    assert alert["study_uid"] == uid
    assert alert["source"] == "ai:bleednet"
    acked = await gateway.call("POST", f"/api/alerts/{alert['id']}/acknowledge", "rad1", {})
    assert acked["status"] == "acknowledged"
    row = await gateway.call("GET", f"/api/studies/{study['id']}", "rad1")
    assert (row["priority"], row["open_alerts"], row["images"]) == ("stat", 0, 2)

"""Query/retrieve, worklist, MPPS, access control and bad objects over real associations."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

from server.appkeys import SETTINGS, STORE
from server.dicom.archive import ARCHIVE
from server.dicom.index import INSTANCES, METADATA
from server.dicom.keys import INGEST, PEERS
from server.store.embedded import free_port
from tests.dicom.conftest import Archive
from tests.dicom.scu import associate, in_thread, make_ae, store
from tests.dicom.synthetic import ct_series

PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MWL_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"


def find(port: int, model: str, identifier: Dataset) -> tuple[int, list[Dataset]]:
    ae = make_ae()
    ae.add_requested_context(model)
    assoc = associate(ae, port)
    assert assoc.is_established
    found: list[Dataset] = []
    final = -1
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            code = int(status.Status) if status else -1
            if code == 0xFF00 and answer is not None:
                found.append(answer)
            else:
                final = code
    finally:
        assoc.release()
    return final, found


def query(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


async def _load(archive: Archive) -> tuple[Any, Any]:
    first = ct_series(3, patient_name="Doe^Jane", patient_id="P001", study_date="20240115")
    second = ct_series(
        2,
        patient_name="Smith^John",
        patient_id="P002",
        study_date="20240301",
        accession="ACC777",
        modality="MR",
    )
    assert await in_thread(store, archive.port, first.datasets + second.datasets) == [0] * 5
    return first, second


async def test_c_find_all_levels(archive: Archive) -> None:
    first, second = await _load(archive)
    port = archive.port

    status, found = await in_thread(
        find, port, STUDY_FIND, query("STUDY", PatientName="doe*", StudyInstanceUID="")
    )
    assert status == 0
    assert [str(ds.StudyInstanceUID) for ds in found] == [first.study_uid]
    assert str(found[0].PatientName) == "Doe^Jane"

    status, found = await in_thread(
        find,
        port,
        STUDY_FIND,
        query("STUDY", StudyDate="20240201-20241231", PatientID="", ModalitiesInStudy=""),
    )
    assert [str(ds.PatientID) for ds in found] == ["P002"]
    assert list(found[0].ModalitiesInStudy) == ["MR"] or found[0].ModalitiesInStudy == "MR"

    status, found = await in_thread(
        find,
        port,
        STUDY_FIND,
        query("STUDY", StudyInstanceUID="", NumberOfStudyRelatedInstances=""),
    )
    counts = {str(ds.StudyInstanceUID): int(ds.NumberOfStudyRelatedInstances) for ds in found}
    assert counts == {first.study_uid: 3, second.study_uid: 2}

    uid_list = f"{first.study_uid}\\{second.study_uid}"
    status, found = await in_thread(
        find, port, STUDY_FIND, query("SERIES", StudyInstanceUID=uid_list, SeriesInstanceUID="")
    )
    assert {str(ds.SeriesInstanceUID) for ds in found} == {first.series_uid, second.series_uid}

    status, found = await in_thread(
        find,
        port,
        STUDY_FIND,
        query(
            "IMAGE",
            StudyInstanceUID=first.study_uid,
            SeriesInstanceUID=first.series_uid,
            SOPInstanceUID="",
            InstanceNumber="",
        ),
    )
    assert [int(ds.InstanceNumber) for ds in found] == [1, 2, 3]

    status, found = await in_thread(
        find, port, PATIENT_FIND, query("PATIENT", PatientID="P00?", PatientName="")
    )
    assert sorted(str(ds.PatientID) for ds in found) == ["P001", "P002"]

    status, found = await in_thread(find, port, STUDY_FIND, query("PATIENT", PatientID=""))
    assert status == 0xA900
    assert found == []

    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        bad_date = query("STUDY", StudyDate="2024")
    status, found = await in_thread(find, port, STUDY_FIND, bad_date)
    assert status == 0xA900


class StorageSCP:
    """A second real SCP that receives what Noctis sends it by C-MOVE."""

    def __init__(self, ae_title: str) -> None:
        self.received: list[Dataset] = []
        self.ae = AE(ae_title=ae_title)
        for context in StoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax)
        self.port = free_port()

        def on_store(event: evt.Event) -> int:
            self.received.append(event.dataset)
            return 0

        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )

    def stop(self) -> None:
        self.server.shutdown()


def move(port: int, destination: str, identifier: Dataset) -> list[int]:
    ae = make_ae()
    ae.add_requested_context(STUDY_MOVE)
    assoc = associate(ae, port)
    assert assoc.is_established
    statuses = []
    try:
        for status, _answer in assoc.send_c_move(identifier, destination, STUDY_MOVE):
            statuses.append(int(status.Status) if status else -1)
    finally:
        assoc.release()
    return statuses


async def test_c_move_to_configured_destination(archive: Archive) -> None:
    first, _second = await _load(archive)
    scp = StorageSCP("VIEWER1")
    try:
        await archive.app[PEERS].add("VIEWER1", "main", "127.0.0.1", scp.port, "viewer", "test")
        await archive.app[PEERS].add("TESTSCU", "main", None, None, "test scu", "test")
        statuses = await in_thread(
            move,
            archive.port,
            "VIEWER1",
            query("SERIES", StudyInstanceUID=first.study_uid, SeriesInstanceUID=first.series_uid),
        )
        assert statuses[-1] == 0
        assert sorted(str(ds.SOPInstanceUID) for ds in scp.received) == sorted(
            str(ds.SOPInstanceUID) for ds in first.datasets
        )
        unknown = await in_thread(
            move, archive.port, "NOBODY", query("STUDY", StudyInstanceUID=first.study_uid)
        )
        assert unknown[-1] == 0xA801
    finally:
        scp.stop()


def get(port: int, identifier: Dataset) -> tuple[int, list[Dataset]]:
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0

    ae = make_ae()
    ae.add_requested_context(STUDY_GET)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")
    role = build_role("1.2.840.10008.5.1.4.1.1.2", scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="NOCTIS",
        ext_neg=[role],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    final = -1
    try:
        for status, _answer in assoc.send_c_get(identifier, STUDY_GET):
            final = int(status.Status) if status else -1
    finally:
        assoc.release()
    return final, received


async def test_c_get_returns_the_stored_pixels(archive: Archive) -> None:
    first, _second = await _load(archive)
    status, received = await in_thread(
        get, archive.port, query("STUDY", StudyInstanceUID=first.study_uid)
    )
    assert status == 0
    sent = {str(ds.SOPInstanceUID): ds.PixelData for ds in first.datasets}
    assert {str(ds.SOPInstanceUID): ds.PixelData for ds in received} == sent


async def test_unknown_caller_is_rejected_once_peers_are_listed(archive: Archive) -> None:
    await archive.app[PEERS].add("MODALITY1", "main", "127.0.0.1", None, "ct", "test")

    def attempt(ae_title: str) -> bool:
        ae = make_ae(ae_title)
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = associate(ae, archive.port)
        accepted = bool(assoc.is_established)
        if accepted:
            assoc.release()
        return accepted

    assert await in_thread(attempt, "MODALITY1") is True
    assert await in_thread(attempt, "STRANGER") is False


async def test_peer_facility_scopes_storage_and_queries(archive: Archive) -> None:
    await archive.app[PEERS].add("EASTCT", "east", None, None, "", "test")
    await archive.app[PEERS].add("WESTCT", "west", None, None, "", "test")
    series = ct_series(1)
    assert await in_thread(store, archive.port, series.datasets, "EASTCT") == [0]
    _status, west = await in_thread(
        lambda: _find_as("WESTCT", archive.port, query("STUDY", StudyInstanceUID=""))
    )
    _status, east = await in_thread(
        lambda: _find_as("EASTCT", archive.port, query("STUDY", StudyInstanceUID=""))
    )
    assert west == []
    assert len(east) == 1
    stored = [e for e in archive.events if e.topic == "dicom.instance.stored"]
    assert stored[0].facility == "east"


def _find_as(ae_title: str, port: int, identifier: Dataset) -> tuple[int, list[Dataset]]:
    ae = make_ae(ae_title)
    ae.add_requested_context(STUDY_FIND)
    assoc = associate(ae, port)
    found = [a for s, a in assoc.send_c_find(identifier, STUDY_FIND) if a is not None]
    assoc.release()
    return 0, found


async def test_bad_objects_get_failure_statuses_and_store_nothing(archive: Archive) -> None:
    good = ct_series(1).datasets[0]
    short = ct_series(1).datasets[0]
    short.PixelData = short.PixelData[:-32]
    bomb = ct_series(1).datasets[0]
    bomb.Rows, bomb.Columns, bomb.NumberOfFrames = 65535, 65535, 1000
    statuses = await in_thread(store, archive.port, [short, bomb, good, good])
    assert statuses == [0xA900, 0xA900, 0, 0]
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 1
    await archive.wait_for("dicom.association.closed")
    failed = [e for e in archive.events if e.topic == "dicom.instance.failed"]
    assert len(failed) == 2
    assert "needs" in failed[0].data["reason"]
    closed = archive.events[-1].data
    assert (closed["stored"], closed["duplicates"], closed["failed"]) == (1, 1, 2)


def _send_half_then_abort(port: int, ds: Dataset) -> int:
    """Send the command and the first PDUs of a C-STORE data set, then A-ABORT."""
    ae = make_ae()
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = associate(ae, port, max_pdu=4096)
    assert assoc.is_established
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = ds.SOPClassUID
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = io.BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    sent = 0
    for pdata in message.encode_msg(assoc.accepted_contexts[0].context_id, 4096):
        assert isinstance(pdata, P_DATA)
        assoc.dul.send_pdu(pdata)
        sent += 1
        if sent == 10:
            break
    assoc.abort()
    return sent


async def test_aborted_association_leaves_no_partial_instance(archive: Archive) -> None:
    aborted = ct_series(1, rows=256, columns=256).datasets[0]
    assert await in_thread(_send_half_then_abort, archive.port, aborted) == 10
    # A complete store afterwards proves the gateway has finished with the aborted one.
    after = ct_series(1).datasets[0]
    assert await in_thread(store, archive.port, [after]) == [0]
    uids = [doc["_id"] async for doc in archive.app[STORE][INSTANCES].find({})]
    assert uids == [str(after.SOPInstanceUID)]
    await archive.app[INGEST].settled()
    assert await archive.app[STORE][METADATA].count_documents({}) == 1
    with pytest.raises(KeyError):
        await archive.app[ARCHIVE].instance_bytes(str(aborted.SOPInstanceUID))
    blob_root = archive.app[SETTINGS].data_dir / "blobs"
    files = [p.name for p in blob_root.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].startswith(str(after.SOPInstanceUID))


async def test_worklist_and_mpps(archive: Archive) -> None:
    token = await archive.admin_token()
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "patient": {"name": "Doe^Jane", "id": "P001", "birth_date": "19700101", "sex": "F"},
        "accession_number": "ACC900",
        "requested_procedure_description": "CT HEAD",
        "step": {
            "station_ae_title": "CT1",
            "modality": "CT",
            "start_date": "20240115",
            "start_time": "090000",
            "description": "HEAD W/O",
        },
    }
    response = await archive.client.post(
        "/api/dicom/scheduled-procedures", json=body, headers=headers
    )
    assert response.status == 201, await response.text()
    step = await response.json()
    other = {**body, "accession_number": "ACC901", "step": {**body["step"], "modality": "MR"}}
    response = await archive.client.post(
        "/api/dicom/scheduled-procedures", json=other, headers=headers
    )
    assert response.status == 201

    identifier = Dataset()
    identifier.PatientName = "doe^*"
    identifier.AccessionNumber = ""
    identifier.StudyInstanceUID = ""
    item = Dataset()
    item.Modality = "CT"
    item.ScheduledProcedureStepStartDate = "20240101-20240131"
    item.ScheduledStationAETitle = ""
    identifier.ScheduledProcedureStepSequence = [item]
    status, found = await in_thread(find, archive.port, MWL_FIND, identifier)
    assert status == 0
    assert [str(ds.AccessionNumber) for ds in found] == ["ACC900"]
    assert str(found[0].StudyInstanceUID) == step["study_instance_uid"]
    # Only the requested keys (plus the character set) come back, in and out of the sequence.
    assert [e.keyword for e in found[0]] == [
        "SpecificCharacterSet",
        "AccessionNumber",
        "PatientName",
        "StudyInstanceUID",
        "ScheduledProcedureStepSequence",
    ]
    returned_item = found[0].ScheduledProcedureStepSequence[0]
    assert [e.keyword for e in returned_item] == [
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
    ]
    assert str(returned_item.ScheduledStationAETitle) == "CT1"
    unknown_key = Dataset()
    unknown_key.AccessionNumber = "ACC900"
    unknown_key.AdmissionID = ""
    unknown_key.ScheduledProcedureStepSequence = []
    status, found = await in_thread(find, archive.port, MWL_FIND, unknown_key)
    assert status == 0
    assert [e.keyword for e in found[0]] == [
        "SpecificCharacterSet",
        "AccessionNumber",
        "AdmissionID",
        "ScheduledProcedureStepSequence",
    ]
    assert found[0].AdmissionID in ("", None)
    whole = found[0].ScheduledProcedureStepSequence[0]
    assert str(whole.ScheduledProcedureStepDescription) == "HEAD W/O"

    mpps_uid = generate_uid()

    def perform() -> tuple[int, int, int]:
        ae = make_ae()
        ae.add_requested_context(MPPS)
        assoc = associate(ae, archive.port)
        attrs = Dataset()
        attrs.PerformedProcedureStepStatus = "IN PROGRESS"
        ref = Dataset()
        ref.StudyInstanceUID = step["study_instance_uid"]
        ref.AccessionNumber = "ACC900"
        attrs.ScheduledStepAttributesSequence = [ref]
        created, _ = assoc.send_n_create(attrs, MPPS, mpps_uid)
        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        completed, _ = assoc.send_n_set(done, MPPS, mpps_uid)
        again, _ = assoc.send_n_set(done, MPPS, mpps_uid)
        assoc.release()
        return int(created.Status), int(completed.Status), int(again.Status)

    assert await in_thread(perform) == (0, 0, 0xA710)
    updates = await archive.wait_for("dicom.mpps.updated", 2)
    assert [u.data["status"] for u in updates] == ["IN PROGRESS", "COMPLETED"]
    response = await archive.client.get(
        "/api/dicom/scheduled-procedures?status=completed", headers=headers
    )
    listed = (await response.json())["scheduled_procedures"]
    assert [s["accession_number"] for s in listed] == ["ACC900"]
    status, found = await in_thread(find, archive.port, MWL_FIND, identifier)
    assert found == []

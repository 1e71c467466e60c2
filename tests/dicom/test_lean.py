"""The lean storage path: its hand-written encodings match pynetdicom's, and it serves exactly
the storage-only associations while pynetdicom keeps every other one."""

from __future__ import annotations

import socket

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_ECHO_RSP, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import create_file_meta, encode, encode_file_meta
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context

from server.appkeys import SETTINGS, STORE
from server.dicom import dimse_codec, frames
from server.dicom.frames import MAX_PDU
from server.dicom.index import INSTANCES
from tests.dicom.conftest import Archive
from tests.dicom.scu import associate, in_thread, make_ae
from tests.dicom.synthetic import ct_series

CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@pytest.mark.parametrize("instance", ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498.1"])
def test_file_meta_bytes_equal_pynetdicoms(instance: str) -> None:
    for syntax in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"):
        expected = encode_file_meta(
            create_file_meta(
                sop_class_uid=UID(CT), sop_instance_uid=UID(instance), transfer_syntax=UID(syntax)
            )
        )
        assert dimse_codec.file_meta(CT, instance, syntax) == expected


def _command_bytes(message: C_STORE_RSP | C_ECHO_RSP) -> bytes:
    pdata = next(iter(message.encode_msg(1, 16382)))
    return b"".join(bytes(item[1][1:]) for item in pdata.presentation_data_value_list)


def test_responses_equal_pynetdicoms() -> None:
    store = C_STORE()
    store.MessageIDBeingRespondedTo = 7
    store.AffectedSOPClassUID = CT
    store.AffectedSOPInstanceUID = "1.2.345"
    store.Status = 0xA900
    message = C_STORE_RSP()
    message.primitive_to_message(store)
    ours = dimse_codec.response(0x8001, 7, CT, "1.2.345", 0xA900)
    assert ours == _command_bytes(message)
    echo = C_ECHO()
    echo.MessageIDBeingRespondedTo = 3
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    echo.Status = 0
    message_echo = C_ECHO_RSP()
    message_echo.primitive_to_message(echo)
    assert dimse_codec.response(0x8030, 3, "1.2.840.10008.1.1", None, 0) == _command_bytes(
        message_echo
    )


def test_read_command_reads_what_pydicom_writes_and_refuses_garbage() -> None:
    read = dimse_codec.read_command(_store_command("1.2.3", message_id=5))
    assert dimse_codec.command_int(read, dimse_codec.COMMAND_FIELD) == 1
    assert dimse_codec.command_int(read, dimse_codec.MESSAGE_ID) == 5
    assert dimse_codec.command_uid(read, dimse_codec.AFFECTED_SOP_CLASS) == CT
    assert dimse_codec.command_uid(read, dimse_codec.AFFECTED_SOP_INSTANCE) == "1.2.3"
    with pytest.raises(dimse_codec.CommandError):
        dimse_codec.read_command(b"\x00\x00\x00\x01\xff\xff\xff\x00")
    with pytest.raises(dimse_codec.CommandError):
        dimse_codec.read_command(b"\x08\x00\x16\x00\x02\x00\x00\x00ab")


def _acceptor_max_pdu(port: int, contexts: list[str]) -> tuple[int, int | None]:
    """Store one CT (and C-FIND when offered); return the acceptor's max PDU and status."""
    ae = make_ae()
    for context in contexts:
        ae.add_requested_context(context)
    ds = ct_series(1, rows=64, columns=64).datasets[0]
    assoc = associate(ae, port)
    assert assoc.is_established
    try:
        maximum = int(assoc.acceptor.maximum_length or 0)
        status = assoc.send_c_store(ds)
        if STUDY_FIND in contexts:
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.StudyInstanceUID = ds.StudyInstanceUID
            answers = list(assoc.send_c_find(query, STUDY_FIND))
            assert answers[-1][0].Status == 0
            assert len(answers) == 2
    finally:
        assoc.release()
    return maximum, int(status.Status)


async def test_storage_only_associations_take_the_lean_path(archive: Archive) -> None:
    lean = await in_thread(_acceptor_max_pdu, archive.port, [CT])
    assert lean == (MAX_PDU, 0)
    mixed = await in_thread(_acceptor_max_pdu, archive.port, [CT, STUDY_FIND])
    assert mixed == (0, 0)
    await archive.wait_for("dicom.association.closed", 2)


def _raw_association(port: int, pdus: list[bytes]) -> bytes:
    """Speak raw PDUs after a real negotiation; return whatever the gateway sent back."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "RAW"
    primitive.called_ae_title = "NOCTIS"
    context = build_context(CT, "1.2.840.10008.1.2.1")
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 16382
    primitive.user_information = [maximum]
    request = A_ASSOCIATE_RQ()
    request.from_primitive(primitive)
    received = b""
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(request.encode())
        received += sock.recv(65536)
        for pdu in pdus:
            sock.sendall(pdu)
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _data_pdu(context_id: int, control: int, payload: bytes) -> bytes:
    item = bytes((context_id, control)) + payload
    return b"\x04\x00" + (len(item) + 4).to_bytes(4, "big") + len(item).to_bytes(4, "big") + item


def _store_command(sop_instance: str, message_id: int = 1) -> bytes:
    command = Dataset()
    command.CommandGroupLength = 0
    command.AffectedSOPClassUID = CT
    command.CommandField = 1
    command.MessageID = message_id
    command.Priority = 2
    command.CommandDataSetType = 1
    command.AffectedSOPInstanceUID = sop_instance
    return encode(command, True, True)


async def test_data_set_on_an_unnegotiated_context_aborts_and_stores_nothing(
    archive: Archive,
) -> None:
    ds = ct_series(1, rows=64, columns=64).datasets[0]
    command = dimse_codec.command_pdu(1, _store_command(str(ds.SOPInstanceUID)))
    stray = _data_pdu(3, 0x02, b"abcdef")
    received = await in_thread(_raw_association, archive.port, [command, stray])
    assert received[0] == 0x02  # A-ASSOCIATE-AC
    assert received.endswith(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-ABORT only
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 0
    assert not list((archive.app[SETTINGS].data_dir / "blobs").rglob("*.dcm"))


async def test_echo_and_release_on_the_lean_path(archive: Archive) -> None:
    echo = dimse_codec.command_pdu(1, encode(_echo_command(), True, True))
    release = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
    received = await in_thread(_raw_association, archive.port, [echo, release])
    assert received[0] == 0x02
    answer = dimse_codec.response(0x8030, 9, "1.2.840.10008.1.1", None, 0)
    assert dimse_codec.command_pdu(1, answer) + b"\x06\x00\x00\x00\x00\x04" in received


def _echo_command() -> Dataset:
    command = Dataset()
    command.CommandGroupLength = 0
    command.AffectedSOPClassUID = "1.2.840.10008.1.1"
    command.CommandField = 0x0030
    command.MessageID = 9
    command.CommandDataSetType = 0x0101
    return command


async def test_an_object_above_the_limit_aborts_and_stores_nothing(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "MAX_OBJECT_BYTES", 1000)
    ds = ct_series(1, rows=64, columns=64).datasets[0]
    command = dimse_codec.command_pdu(1, _store_command(str(ds.SOPInstanceUID)))
    item = bytes((1, 0x00)) + bytes(1200)
    fragment = (
        b"\x04\x00" + (len(item) + 4).to_bytes(4, "big") + len(item).to_bytes(4, "big") + item
    )
    received = await in_thread(_raw_association, archive.port, [command, fragment])
    assert received[0] == 0x02
    assert received.endswith(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 0

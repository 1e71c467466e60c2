"""The few fixed DICOM encodings the lean storage path needs, written by hand.

pydicom's general writer and reader cost about as much per C-STORE as our whole header parse,
for structures that never vary: the Part 10 file meta of a received object, a command set's
handful of implicit VR little endian elements, and the C-STORE/C-ECHO responses. Tests check
these bytes equal pynetdicom's and pydicom's own encodings.
"""

from __future__ import annotations

import struct

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

_ELEMENT = struct.Struct("<HHI")
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2s2xI")

COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_RESPONDED = 0x0120
AFFECTED_SOP_CLASS = 0x0002
AFFECTED_SOP_INSTANCE = 0x1000
DATA_SET_TYPE = 0x0800
STATUS = 0x0900
NO_DATA_SET = 0x0101
MAX_COMMAND_BYTES = 64 << 10


class CommandError(ValueError):
    """A command set that cannot be read."""


def _uid_value(uid: str) -> bytes:
    data = uid.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def _text_value(text: str) -> bytes:
    data = text.encode("ascii")
    return data + b" " if len(data) % 2 else data


def _explicit(element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return _EXPLICIT_LONG.pack(0x0002, element, vr, len(value)) + value
    return _EXPLICIT_SHORT.pack(0x0002, element, vr, len(value)) + value


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """The File Meta Information pynetdicom writes for a received object (group 0002)."""
    body = b"".join(
        (
            _explicit(0x0001, b"OB", b"\x00\x01"),
            _explicit(0x0002, b"UI", _uid_value(sop_class)),
            _explicit(0x0003, b"UI", _uid_value(sop_instance)),
            _explicit(0x0010, b"UI", _uid_value(transfer_syntax)),
            _explicit(0x0012, b"UI", _uid_value(str(PYNETDICOM_IMPLEMENTATION_UID))),
            _explicit(0x0013, b"SH", _text_value(PYNETDICOM_IMPLEMENTATION_VERSION)),
        )
    )
    return _explicit(0x0000, b"UL", struct.pack("<I", len(body))) + body


def read_command(data: bytes) -> dict[int, bytes]:
    """Group 0000 elements of an implicit VR little endian command set, by element number."""
    if len(data) > MAX_COMMAND_BYTES:
        raise CommandError("command set too large")
    elements: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise CommandError("truncated command element")
        group, element, length = _ELEMENT.unpack_from(data, offset)
        offset += 8
        if group != 0x0000 or offset + length > len(data):
            raise CommandError("malformed command set")
        elements[element] = data[offset : offset + length]
        offset += length
    return elements


def command_int(command: dict[int, bytes], element: int) -> int | None:
    value = command.get(element)
    if value is None or len(value) != 2:
        return None
    return int.from_bytes(value, "little")


def command_uid(command: dict[int, bytes], element: int) -> str:
    value = command.get(element) or b""
    return value.rstrip(b"\0 ").decode("ascii", errors="replace")


def _implicit(element: int, value: bytes) -> bytes:
    return _ELEMENT.pack(0x0000, element, len(value)) + value


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def response(
    command_field: int, message_id: int, sop_class: str, sop_instance: str | None, status: int
) -> bytes:
    """A C-STORE-RSP or C-ECHO-RSP command set without a data set."""
    body = b"".join(
        (
            _implicit(AFFECTED_SOP_CLASS, _uid_value(sop_class)),
            _implicit(COMMAND_FIELD, _us(command_field)),
            _implicit(MESSAGE_ID_RESPONDED, _us(message_id)),
            _implicit(DATA_SET_TYPE, _us(NO_DATA_SET)),
            _implicit(STATUS, _us(status)),
            _implicit(AFFECTED_SOP_INSTANCE, _uid_value(sop_instance))
            if sop_instance is not None
            else b"",
        )
    )
    return _implicit(0x0000, struct.pack("<I", len(body))) + body


def command_pdu(context_id: int, command: bytes) -> bytes:
    """One P-DATA-TF carrying a whole command set as its last fragment."""
    item = bytes((context_id, 0x03)) + command
    pdv = struct.pack(">I", len(item)) + item
    return b"\x04\x00" + struct.pack(">I", len(pdv)) + pdv

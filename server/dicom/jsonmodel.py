"""A fast path for the DICOM JSON model of a freshly read header.

pydicom's ``to_json_dict`` turns every raw element into a full ``DataElement`` first and costs
several milliseconds per image — more than reading the header. The common elements (text,
numbers, plain person names, binary numbers, short bulk values) are encoded here straight from
the raw bytes; anything unusual (sequences, other character sets, multi-component names, ambiguous
VRs, deferred values) falls back to pydicom, element by element. A test compares both paths on
every sample file.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

BULK_INLINE_LIMIT = 768  # pydicom's (1024 // 4) * 3: larger values become BulkDataURIs
_TEXT = {"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UC", "UI"}
_SINGLE = {"LT", "ST", "UT", "UR"}
_NUMBER_TEXT = {"IS", "DS"}
_BINARY = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_BYTES = {"OB", "OW", "OF", "OD", "OL", "OV"}
_ENCODINGS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


class _Fallback(Exception):
    """This element needs pydicom's own conversion."""


def _charset(ds: Dataset) -> str | None:
    """The Python codec of the data set's single character set, or None for anything else."""
    value = ds.get("SpecificCharacterSet")
    if value is None:
        return "ascii"
    if not isinstance(value, str):
        return None
    return _ENCODINGS.get(value.strip())


def _text(value: bytes, encoding: str, vr: str) -> str:
    try:
        text = value.decode(encoding)
    except UnicodeDecodeError:
        raise _Fallback from None
    return text.rstrip(" \0") if vr != "UI" else text.rstrip("\0 ")


def _element(raw: RawDataElement, vr: str, encoding: str) -> dict[str, Any]:
    value = raw.value
    if value is None:
        raise _Fallback
    if not value:
        return {"vr": vr}
    if vr in _BYTES:
        if len(value) > BULK_INLINE_LIMIT:
            return {"vr": vr}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode()}
    if vr in _BINARY:
        code = _BINARY[vr]
        size = struct.calcsize(code)
        if len(value) % size:
            raise _Fallback
        if raw.is_little_endian is None:
            raise _Fallback
        order = "<" if raw.is_little_endian else ">"
        try:
            numbers = struct.unpack(f"{order}{len(value) // size}{code}", value)
        except struct.error:
            raise _Fallback from None
        return {"vr": vr, "Value": list(numbers)}
    text = _text(value, encoding, vr)
    if not text:
        return {"vr": vr}
    if vr in _SINGLE:
        return {"vr": vr, "Value": [text]}
    parts = text.split("\\")
    if any(not part.strip() for part in parts):
        raise _Fallback
    if vr in _TEXT:
        return {"vr": vr, "Value": parts}
    if vr in _NUMBER_TEXT:
        try:
            if vr == "IS":
                return {"vr": vr, "Value": [int(p) for p in parts]}
            return {"vr": vr, "Value": [float(p) for p in parts]}
        except ValueError:
            raise _Fallback from None
    if vr == "PN" and "=" not in text and len(parts) == 1:
        return {"vr": vr, "Value": [{"Alphabetic": text}]}
    raise _Fallback


def dataset_json(ds: Dataset, failures: dict[str, Exception] | None = None) -> dict[str, Any]:
    """The DICOM JSON model of ``ds``: large bulk values carry no value (see ``parse``).

    An element pydicom cannot convert either raises or, given ``failures``, is left out of the
    result and recorded there under its key."""
    encoding = _charset(ds)
    body: dict[str, Any] = {}
    for tag, raw in ds._dict.items():
        key = f"{int(tag):08X}"
        try:
            if encoding is None or not isinstance(raw, RawDataElement) or tag >> 16 == 0x0002:
                raise _Fallback
            vr = raw.VR
            if vr is None:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    raise _Fallback from None
            if vr not in _TEXT | _SINGLE | _NUMBER_TEXT | _BINARY.keys() | _BYTES | {"PN"}:
                raise _Fallback
            body[key] = _element(raw, str(vr), encoding)
        except _Fallback:
            try:
                element = ds[tag].to_json_dict(lambda _e: "", 1024)
            except Exception as exc:
                if failures is None:
                    raise
                failures[key] = exc
                continue
            element.pop("BulkDataURI", None)
            body[key] = element
    return body

"""Reading and vetting one received DICOM object, without decoding its pixels.

Every entry point (C-STORE, STOW-RS, ``noctis import``) hands the bytes it received here first.
Only the header is parsed: the pixel data element is deferred, so its declared length can be
checked against Rows x Columns x frames x bits without ever reading or allocating it, and a
"pixel bomb" whose header promises terabytes is refused before anything is allocated. The bytes
themselves are kept exactly as received; decoding happens only when rendering.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import UID

from server.dicom.jsonmodel import dataset_json

PIXEL_DATA = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
MAX_DECODED_BYTES = 4 << 30
MAX_FRAMES = 20_000
BULK_THRESHOLD = 1024
_DEFER_SIZE = 1024
_PARSE_LOCK = threading.Lock()
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UNCOMPRESSED = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
}


class Failure(Enum):
    """Why an object was refused, mapped one-to-one onto DIMSE failure statuses."""

    CANNOT_UNDERSTAND = 0xC000
    DOES_NOT_MATCH_SOP_CLASS = 0xA900
    OUT_OF_RESOURCES = 0xA700


class Rejected(Exception):
    """The object is refused; ``reason`` is shown to technicians and sent to the peer."""

    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


@dataclass(frozen=True)
class Prepared:
    """One vetted object: the untouched bytes plus what the index needs."""

    raw: bytes
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    frames: int
    json: dict[str, Any] = field(repr=False)

    def value(self, tag: str) -> Any:
        """First value of a top-level element in the DICOM JSON, or None."""
        element = self.json.get(tag)
        if not element:
            return None
        values = element.get("Value")
        return values[0] if values else None


# The header's values are read from its DICOM JSON (built once, mostly straight from the raw
# bytes, see ``jsonmodel``) instead of through pydicom's Dataset, which would convert each of
# them into a DataElement a second time.
_TAGS = {
    "SOPClassUID": "00080016",
    "SOPInstanceUID": "00080018",
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "InstanceNumber": "00200013",
    "SamplesPerPixel": "00280002",
    "PhotometricInterpretation": "00280004",
    "NumberOfFrames": "00280008",
    "Rows": "00280010",
    "Columns": "00280011",
    "BitsAllocated": "00280100",
}


def _values(body: dict[str, Any], keyword: str) -> list[Any]:
    element = body.get(_TAGS[keyword])
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []


def _uid(body: dict[str, Any], keyword: str) -> str:
    text = "\\".join(str(v) for v in _values(body, keyword)).strip()
    if not text:
        raise Rejected(Failure.DOES_NOT_MATCH_SOP_CLASS, f"missing required {keyword}")
    if len(text) > 64 or not UID_PATTERN.match(text):
        raise Rejected(Failure.DOES_NOT_MATCH_SOP_CLASS, f"{keyword} {text[:70]!r} is not a UID")
    return text


def _int(body: dict[str, Any], keyword: str, default: int | None = None) -> int | None:
    values = _values(body, keyword)
    if not values or values == [""]:
        return default
    try:
        if len(values) != 1 or isinstance(values[0], dict | bool):
            raise ValueError(keyword)
        return int(values[0])
    except (TypeError, ValueError):
        raise Rejected(Failure.DOES_NOT_MATCH_SOP_CLASS, f"{keyword} is not a number") from None


def _check_pixels(body: dict[str, Any], element: Any, transfer_syntax: str, raw_length: int) -> int:
    """Return the number of frames, refusing declared sizes that cannot be true or are absurd."""
    if element is None:
        return 0
    rows = _int(body, "Rows")
    columns = _int(body, "Columns")
    bits = _int(body, "BitsAllocated")
    if rows is None or columns is None or bits is None:
        raise Rejected(
            Failure.DOES_NOT_MATCH_SOP_CLASS, "pixel data without Rows, Columns or BitsAllocated"
        )
    samples = _int(body, "SamplesPerPixel", 1) or 1
    frames = _int(body, "NumberOfFrames", 1) or 1
    if not (0 < rows <= 65535 and 0 < columns <= 65535):
        raise Rejected(Failure.DOES_NOT_MATCH_SOP_CLASS, f"invalid dimensions {rows}x{columns}")
    if bits not in (1, 8, 16, 32, 64) or samples not in (1, 3, 4):
        raise Rejected(
            Failure.DOES_NOT_MATCH_SOP_CLASS,
            f"unsupported BitsAllocated {bits} / samples {samples}",
        )
    if not 0 < frames <= MAX_FRAMES:
        raise Rejected(Failure.DOES_NOT_MATCH_SOP_CLASS, f"invalid NumberOfFrames {frames}")
    decoded_bits = rows * columns * frames * samples * bits
    if decoded_bits > MAX_DECODED_BYTES * 8:
        raise Rejected(
            Failure.DOES_NOT_MATCH_SOP_CLASS,
            f"{rows}x{columns}x{frames} frames would decode to {decoded_bits // 8 >> 20} MiB, "
            f"above the {MAX_DECODED_BYTES >> 20} MiB limit",
        )
    length = getattr(element, "length", None)
    if transfer_syntax in _UNCOMPRESSED:
        expected = (decoded_bits + 7) // 8
        photometric = _values(body, "PhotometricInterpretation")
        if photometric and str(photometric[0]).strip() == "YBR_FULL_422":
            expected = expected * 2 // 3
        if length == UNDEFINED_LENGTH or length is None or length not in (expected, expected + 1):
            raise Rejected(
                Failure.DOES_NOT_MATCH_SOP_CLASS,
                f"pixel data is {length} bytes but {rows}x{columns}x{frames} frames "
                f"x {samples} samples x {bits} bits needs {expected}",
            )
        offset = getattr(element, "value_tell", None)
        deflated = transfer_syntax == "1.2.840.10008.1.2.1.99"
        if not deflated and offset is not None and offset + length > raw_length:
            raise Rejected(
                Failure.CANNOT_UNDERSTAND,
                f"truncated: pixel data needs {length} bytes, {raw_length - offset} received",
            )
    elif length != UNDEFINED_LENGTH:
        raise Rejected(
            Failure.DOES_NOT_MATCH_SOP_CLASS,
            "compressed pixel data must be encapsulated (undefined length)",
        )
    return frames


def to_json(ds: Dataset, failures: dict[str, Exception]) -> tuple[dict[str, Any], Any]:
    """The DICOM JSON model of the header, with the bulk pixel data referenced rather than
    inlined, and the pixel data element itself (None when there is none). Elements that cannot
    be converted are recorded in ``failures`` (see ``_vetted``)."""
    pixels = ds._dict.get(BaseTag(PIXEL_DATA))
    if pixels is not None:
        del ds[PIXEL_DATA]
    body = dataset_json(ds, failures)
    if pixels is not None:
        body["7FE00010"] = {"vr": "OW", "BulkDataURI": ""}
    return body, pixels


def _vetted(ds: Dataset, body: dict[str, Any], failures: dict[str, Exception]) -> dict[str, Any]:
    """What the checks read: the JSON, plus the raw text of any element it could not hold, so
    a bad UID or number is refused with its own reason rather than as unreadable."""
    if not failures:
        return body
    raw_texts = {}
    for key in failures:
        value = getattr(ds._dict.get(BaseTag(int(key, 16))), "value", None)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str):
            raw_texts[key] = {"Value": value.strip(" \0").split("\\")}
    return {**body, **raw_texts}


def prepare(raw: bytes, expected_sop_class: str | None = None) -> Prepared:
    """Vet a Part 10 object; raise ``Rejected`` with the DIMSE failure it deserves.

    pydicom warns about the many small deviations real modalities produce (odd VRs, bad UID
    characters); those objects are still stored as sent, so the warnings are silenced here. The
    warning filters are process-global, hence the lock: parsing is GIL-bound anyway.
    """
    with _PARSE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _prepare(raw, expected_sop_class)


def _prepare(raw: bytes, expected_sop_class: str | None) -> Prepared:
    if raw[:2] == b"\x02\x00" and raw[4:6].isalpha():
        # File meta without the 128-byte preamble (pydicom's default writer does this): the
        # preamble carries nothing, so adding it changes no byte of the object itself.
        raw = bytes(128) + b"DICM" + raw
    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise Rejected(Failure.CANNOT_UNDERSTAND, "not a DICOM Part 10 file (no DICM prefix)")
    try:
        ds = dcmread(io.BytesIO(raw), defer_size=_DEFER_SIZE)
        transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "")).strip()
        if not transfer_syntax:
            raise Rejected(Failure.CANNOT_UNDERSTAND, "file meta has no TransferSyntaxUID")
        if not UID(transfer_syntax).is_transfer_syntax:
            raise Rejected(
                Failure.CANNOT_UNDERSTAND, f"unknown transfer syntax {transfer_syntax[:70]!r}"
            )
        failures: dict[str, Exception] = {}
        body, pixels = to_json(ds, failures)
        vetted = _vetted(ds, body, failures)
        sop_class = _uid(vetted, "SOPClassUID")
        sop_instance = _uid(vetted, "SOPInstanceUID")
        study = _uid(vetted, "StudyInstanceUID")
        series = _uid(vetted, "SeriesInstanceUID")
        if expected_sop_class is not None and expected_sop_class != sop_class:
            raise Rejected(
                Failure.DOES_NOT_MATCH_SOP_CLASS,
                f"SOPClassUID {sop_class} differs from the negotiated {expected_sop_class}",
            )
        meta_instance = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "")).strip()
        if meta_instance and meta_instance != sop_instance:
            raise Rejected(
                Failure.DOES_NOT_MATCH_SOP_CLASS,
                "MediaStorageSOPInstanceUID differs from SOPInstanceUID",
            )
        frames = _check_pixels(vetted, pixels, transfer_syntax, len(raw))
        instance_number = _int(vetted, "InstanceNumber")
        for failure in failures.values():
            raise failure
    except Rejected:
        raise
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
        raise Rejected(
            Failure.CANNOT_UNDERSTAND, f"cannot parse the data set: {str(exc)[:200]}"
        ) from None
    except Exception as exc:  # pydicom raises many types on hostile input
        raise Rejected(
            Failure.CANNOT_UNDERSTAND, f"cannot parse the data set: {type(exc).__name__}"
        ) from None
    return Prepared(
        raw=raw,
        sop_instance_uid=sop_instance,
        sop_class_uid=sop_class,
        study_instance_uid=study,
        series_instance_uid=series,
        transfer_syntax_uid=transfer_syntax,
        instance_number=instance_number,
        frames=frames,
        json=body,
    )

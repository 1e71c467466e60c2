"""Which transfer syntax a WADO-RS client accepts, and transcoding to Explicit VR Little Endian.

PS3.18 8.7.3: an Accept media range may name a ``transfer-syntax``; ``*`` means any. Noctis
stores objects as received, so it answers in the stored syntax when the client accepts it (or
names none: sending objects as stored is what DICOMweb clients and OHIF expect), transcodes to
Explicit VR Little Endian when that is what the client asks for and pydicom can decode the
stored pixels, and otherwise answers 406 naming what it can send.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian

_SERVED_TYPES = ("application/dicom", "multipart/related", "*/*", "multipart/*", "application/*")
ANY = "*"


@dataclass(frozen=True)
class Accepted:
    """The transfer syntaxes a client accepts for ``application/dicom``; ANY if it does not care."""

    syntaxes: frozenset[str]


def _parameters(media_range: str) -> tuple[str, dict[str, str]]:
    kind, *parts = media_range.split(";")
    params = {}
    for part in parts:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), params


def _ranges(header: str) -> list[str]:
    """Split an Accept header on the commas outside quoted strings."""
    ranges: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            ranges.append("".join(current))
            current = []
        else:
            current.append(char)
    ranges.append("".join(current))
    return [r for r in ranges if r.strip()]


def parse_accept(header: str) -> Accepted | None:
    """What an Accept header allows for DICOM instances, or None if nothing we can serve."""
    if not header.strip():
        return Accepted(frozenset({ANY}))
    syntaxes: set[str] = set()
    for media_range in _ranges(header):
        kind, params = _parameters(media_range)
        if kind not in _SERVED_TYPES:
            continue
        if kind == "multipart/related" and params.get("type", "application/dicom") not in (
            "application/dicom",
            "*/*",
            "application/*",
        ):
            continue
        if params.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        syntaxes.add(params.get("transfer-syntax") or ANY)
    return Accepted(frozenset(syntaxes)) if syntaxes else None


def choose(stored: str, accepted: Accepted) -> str | None:
    """The syntax to send an object stored as ``stored`` in, or None if we cannot."""
    if ANY in accepted.syntaxes or stored in accepted.syntaxes:
        return stored
    if ExplicitVRLittleEndian in accepted.syntaxes and _decodable(stored):
        return ExplicitVRLittleEndian
    return None


def _decodable(stored: str) -> bool:
    uid = UID(stored)
    if not uid.is_transfer_syntax or uid == "1.2.840.10008.1.2.2":
        # Big endian needs byte swapping pydicom does not do while writing.
        return False
    if not uid.is_compressed:
        return True
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def refusal(stored: str) -> str:
    return (
        f"This object is stored as {stored}; it can be sent as stored or as Explicit VR Little "
        f"Endian ({ExplicitVRLittleEndian}). Ask for transfer-syntax=* or one of those."
    )


def to_explicit_little_endian(raw: bytes) -> bytes:
    """The same object re-encoded as Explicit VR Little Endian, pixels decompressed if needed."""
    ds = dcmread(io.BytesIO(raw))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        # Lossless: the object stays the same instance, so its UID must not change.
        ds.decompress(generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return out.getvalue()

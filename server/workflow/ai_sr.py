"""Findings from an AI engine's DICOM Structured Report, read into the same shape as the HTTP
intake's body, so one validation (the catalog's ``ai.findings.create``) covers both paths.

Pure: bytes in, finding bodies out, or ``SrError`` with a message a person can act on. The
convention engines follow (matched on concept meanings, case-insensitively, so vendors' code
values do not matter):

- any SR Storage SOP class; ``StudyInstanceUID`` names the study, ``AccessionNumber`` may help;
  ``ManufacturerModelName`` and ``SoftwareVersions`` name the model and its version;
- each finding is a ``CODE`` content item named "Finding" (anywhere in the tree), whose concept
  code's meaning is the finding type, with children: a ``CODE`` "Severity" (info, warning or
  critical), a ``NUM`` "Confidence" or "Probability" (0..1), optionally a ``TEXT``
  "Description" and a ``SCOORD`` (points) with an ``IMAGE`` child referencing the instance.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from shared.protocol import ProtocolError, catalog

SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
}
MAX_ITEMS = 2000
MAX_DEPTH = 8
MAX_FINDINGS = 100


class SrError(ValueError):
    """The SR cannot be turned into findings; the message says why."""


@dataclass(frozen=True)
class SrFindings:
    sop_instance_uid: str
    bodies: list[dict[str, Any]]


def _meaning(item: Dataset, sequence: str) -> str:
    codes = item.get(sequence) or []
    if not codes:
        return ""
    code = codes[0]
    return str(code.get("CodeMeaning") or code.get("CodeValue") or "").strip()


def _walk(items: Any, depth: int = 0) -> Iterator[Dataset]:
    if depth > MAX_DEPTH:
        raise SrError(f"The content tree is deeper than {MAX_DEPTH} levels.")
    for item in items or []:
        yield item
        yield from _walk(item.get("ContentSequence"), depth + 1)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:64]


def _finding(item: Dataset, study: dict[str, Any], model: dict[str, str], n: int) -> dict[str, Any]:
    where = f"finding {n}"
    finding_type = _slug(_meaning(item, "ConceptCodeSequence"))
    if not finding_type:
        raise SrError(f"{where}: the Finding item has no concept code.")
    body: dict[str, Any] = {**study, "finding_type": finding_type, "model": model}
    for child in item.get("ContentSequence") or []:
        name = _meaning(child, "ConceptNameCodeSequence").lower()
        kind = child.get("ValueType")
        if kind == "CODE" and name == "severity":
            body["severity"] = _meaning(child, "ConceptCodeSequence").lower()
        elif kind == "NUM" and name in ("confidence", "probability"):
            measured = child.get("MeasuredValueSequence") or []
            try:
                body["confidence"] = float(measured[0].NumericValue)
            except (IndexError, AttributeError, TypeError, ValueError):
                raise SrError(f"{where}: Confidence has no numeric value.") from None
        elif kind == "TEXT" and name == "description":
            body["description"] = str(child.get("TextValue") or "")[:2000]
        elif kind == "SCOORD":
            body["location"] = _location(child, where)
    for required in ("severity", "confidence"):
        if required not in body:
            raise SrError(f"{where} ({finding_type}): no {required.capitalize()} item.")
    return body


def _location(item: Dataset, where: str) -> dict[str, Any]:
    data = [float(v) for v in (item.get("GraphicData") or [])]
    if not data or len(data) % 2:
        raise SrError(f"{where}: SCOORD GraphicData must hold x,y pairs.")
    location: dict[str, Any] = {"points": [data[i : i + 2] for i in range(0, len(data), 2)]}
    for child in item.get("ContentSequence") or []:
        refs = child.get("ReferencedSOPSequence") or []
        if child.get("ValueType") == "IMAGE" and refs:
            location["sop_instance_uid"] = str(refs[0].ReferencedSOPInstanceUID)
            frames = refs[0].get("ReferencedFrameNumber")
            if frames:
                first = frames[0] if isinstance(frames, list | tuple) else frames
                location["frame"] = max(int(first) - 1, 0)
    if "sop_instance_uid" not in location:
        raise SrError(f"{where}: the SCOORD does not reference an image.")
    return location


def read_findings(data: bytes) -> SrFindings:
    """Parse and validate every finding first; a single bad one refuses the whole SR."""
    try:
        ds = dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, EOFError, ValueError, TypeError, OSError) as exc:
        raise SrError(f"Not a readable DICOM file: {exc}") from None
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in SR_CLASSES:
        raise SrError(f"SOP class {sop_class or '(none)'} is not a Structured Report.")
    uid = str(ds.get("StudyInstanceUID", ""))
    if not uid:
        raise SrError("The SR has no StudyInstanceUID.")
    model = {
        "name": str(ds.get("ManufacturerModelName", "")).strip()[:64],
        "version": str(ds.get("SoftwareVersions", "")).strip()[:32],
    }
    if not model["name"] or not model["version"]:
        raise SrError("ManufacturerModelName and SoftwareVersions must name the model.")
    study: dict[str, Any] = {"study_instance_uid": uid}
    accession = str(ds.get("AccessionNumber", "")).strip()
    if accession:
        study["accession_number"] = accession
    bodies: list[dict[str, Any]] = []
    for count, item in enumerate(_walk(ds.get("ContentSequence")), 1):
        if count > MAX_ITEMS:
            raise SrError(f"The SR has more than {MAX_ITEMS} content items.")
        if item.get("ValueType") == "CODE" and (
            _meaning(item, "ConceptNameCodeSequence").lower() == "finding"
        ):
            bodies.append(_finding(item, study, model, len(bodies) + 1))
            if len(bodies) > MAX_FINDINGS:
                raise SrError(f"The SR has more than {MAX_FINDINGS} findings.")
    if not bodies:
        raise SrError("The SR contains no Finding items.")
    for n, body in enumerate(bodies, 1):
        try:
            catalog().validate_request("ai.findings.create", body)
        except ProtocolError as exc:
            raise SrError(f"finding {n}: {exc.message}") from None
    return SrFindings(str(ds.get("SOPInstanceUID", "")), bodies)

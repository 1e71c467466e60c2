"""DICOM attribute matching (PS3.4 C.2.2.2) turned into store filters, shared by C-FIND and QIDO.

Pure: keyword/value pairs in, a MongoDB filter out. Supported: single value matching, wildcards
``*`` and ``?``, date/time ranges (``a-b``, ``-b``, ``a-``), UID list matching (``\\``-separated),
universal matching (empty value, or ``*`` alone) and case-insensitive person names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]


class Kind(Enum):
    UID = "uid"
    DATE = "date"
    TIME = "time"
    NAME = "name"
    TEXT = "text"
    NUMBER = "number"
    LIST = "list"


@dataclass(frozen=True)
class Field:
    path: str
    kind: Kind


class QueryError(ValueError):
    """A query value the standard does not allow (e.g. a malformed range)."""


_PATIENT = {
    "PatientName": Field("q.PatientName_lc", Kind.NAME),
    "PatientID": Field("q.PatientID", Kind.TEXT),
    "IssuerOfPatientID": Field("q.IssuerOfPatientID", Kind.TEXT),
    "PatientBirthDate": Field("q.PatientBirthDate", Kind.DATE),
    "PatientSex": Field("q.PatientSex", Kind.TEXT),
}
_STUDY = {
    "StudyInstanceUID": Field("_id", Kind.UID),
    "StudyDate": Field("q.StudyDate", Kind.DATE),
    "StudyTime": Field("q.StudyTime", Kind.TIME),
    "AccessionNumber": Field("q.AccessionNumber", Kind.TEXT),
    "StudyID": Field("q.StudyID", Kind.TEXT),
    "StudyDescription": Field("q.StudyDescription", Kind.TEXT),
    "ReferringPhysicianName": Field("q.ReferringPhysicianName", Kind.TEXT),
    "ModalitiesInStudy": Field("modalities", Kind.LIST),
}
_SERIES = {
    "SeriesInstanceUID": Field("_id", Kind.UID),
    "StudyInstanceUID": Field("study_uid", Kind.UID),
    "Modality": Field("q.Modality", Kind.TEXT),
    "SeriesNumber": Field("q.SeriesNumber", Kind.NUMBER),
    "SeriesDescription": Field("q.SeriesDescription", Kind.TEXT),
    "SeriesDate": Field("q.SeriesDate", Kind.DATE),
    "SeriesTime": Field("q.SeriesTime", Kind.TIME),
    "BodyPartExamined": Field("q.BodyPartExamined", Kind.TEXT),
    "PerformedProcedureStepStartDate": Field("q.PerformedProcedureStepStartDate", Kind.DATE),
}
_IMAGE = {
    "SOPInstanceUID": Field("_id", Kind.UID),
    "SeriesInstanceUID": Field("series_uid", Kind.UID),
    "StudyInstanceUID": Field("study_uid", Kind.UID),
    "SOPClassUID": Field("sop_class_uid", Kind.UID),
    "InstanceNumber": Field("instance_number", Kind.NUMBER),
}

FIELDS: dict[Level, dict[str, Field]] = {
    "PATIENT": _PATIENT,
    "STUDY": {**_PATIENT, **_STUDY},
    "SERIES": _SERIES,
    "IMAGE": _IMAGE,
}

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2,6}(\.\d{1,6})?$")


def wildcard_regex(value: str) -> str:
    parts = []
    for char in value:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return "^" + "".join(parts) + "$"


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _date(value: str) -> str:
    value = value.replace(".", "") if len(value) == 10 else value
    if not _DATE.match(value):
        raise QueryError(f"{value!r} is not a date (YYYYMMDD)")
    return value


def _time(value: str) -> str:
    value = value.replace(":", "")
    if not _TIME.match(value):
        raise QueryError(f"{value!r} is not a time (HHMMSS)")
    return value


def _range(value: str, kind: Kind) -> Any:
    norm = _date if kind is Kind.DATE else _time
    if "-" not in value:
        exact = norm(value)
        if kind is Kind.TIME:
            return {"$gte": exact, "$lte": exact + "\uffff"}
        return exact
    low, _, high = value.partition("-")
    if not low and not high:
        raise QueryError("a range needs at least one bound")
    condition: dict[str, str] = {}
    if low:
        condition["$gte"] = norm(low)
    if high:
        condition["$lte"] = norm(high) + ("\uffff" if kind is Kind.TIME else "")
    return condition


def condition(field: Field, value: str) -> Any:
    """The filter for one attribute, or None for universal matching."""
    value = value.strip()
    if value in ("", "*"):
        return None
    if field.kind is Kind.UID:
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        return uids[0] if len(uids) == 1 else {"$in": uids}
    if field.kind in (Kind.DATE, Kind.TIME):
        return _range(value, field.kind)
    if field.kind is Kind.NUMBER:
        try:
            return int(value)
        except ValueError:
            raise QueryError(f"{value!r} is not a number") from None
    if field.kind is Kind.NAME:
        value = value.lower()
    if _has_wildcard(value):
        return {"$regex": wildcard_regex(value)}
    return value


def build_filter(level: Level, keys: dict[str, str]) -> dict[str, Any]:
    """Mongo filter for ``keys`` at ``level``; keys the level cannot match on are ignored."""
    fields = FIELDS[level]
    query: dict[str, Any] = {}
    for keyword, value in keys.items():
        field = fields.get(keyword)
        if field is None or value is None:
            continue
        cond = condition(field, str(value))
        if cond is not None:
            query[field.path] = cond
    return query

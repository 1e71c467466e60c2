"""Running C-FIND and QIDO-RS searches against the index and shaping the DICOM JSON answers.

Keys of a higher level given at a lower one (``PatientName`` when searching series) are matched
relationally: the matching parents are found first and their UIDs constrain the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.dicom.index import INSTANCES, PATIENTS, SERIES, STUDIES
from server.dicom.matching import FIELDS, Level, build_filter
from server.store.database import Document, Store

COLLECTIONS: dict[Level, str] = {
    "PATIENT": PATIENTS,
    "STUDY": STUDIES,
    "SERIES": SERIES,
    "IMAGE": INSTANCES,
}
MAX_RESULTS = 5000
_PARENT_LIMIT = 20000


@dataclass(frozen=True)
class Search:
    level: Level
    keys: dict[str, str]
    facility: str | None = None
    limit: int = MAX_RESULTS
    offset: int = 0


def _is(value: int) -> dict[str, Any]:
    return {"vr": "IS", "Value": [value]}


def shape(level: Level, doc: Document) -> dict[str, Any]:
    """The DICOM JSON answer for one matched record, with the computed counts."""
    body = dict(doc.get("attrs") or {})
    if level == "STUDY":
        modalities = [m for m in doc.get("modalities") or [] if m]
        if modalities:
            body["00080061"] = {"vr": "CS", "Value": modalities}
        body["00201206"] = _is(int(doc.get("series", 0)))
        body["00201208"] = _is(int(doc.get("instances", 0)))
    elif level == "SERIES":
        body["00201209"] = _is(int(doc.get("instances", 0)))
    elif level == "PATIENT":
        body["00201200"] = _is(int(doc.get("studies", 0)))
    return dict(sorted(body.items()))


async def _parent_uids(
    store: Store, level: Level, keys: dict[str, str], facility: str | None
) -> list[str] | None:
    query = build_filter(level, keys)
    if not query:
        return None
    if facility is not None:
        query["facility"] = facility
    cursor = store[COLLECTIONS[level]].find(query, {"_id": 1}).limit(_PARENT_LIMIT)
    return [doc["_id"] async for doc in cursor]


def _merge_uids(query: Document, path: str, uids: list[str]) -> None:
    current = query.get(path)
    if current is None:
        query[path] = {"$in": uids}
    elif isinstance(current, str):
        query[path] = current if current in uids else {"$in": []}
    else:
        allowed = set(current.get("$in", uids))
        query[path] = {"$in": [u for u in uids if u in allowed]}


async def search(store: Store, request: Search) -> list[dict[str, Any]]:
    level = request.level
    query = build_filter(level, request.keys)
    if level in ("SERIES", "IMAGE"):
        study_keys = {
            k: v
            for k, v in request.keys.items()
            if k in FIELDS["STUDY"] and k not in FIELDS[level] and k != "StudyInstanceUID"
        }
        studies = await _parent_uids(store, "STUDY", study_keys, request.facility)
        if studies is not None:
            _merge_uids(query, "study_uid", studies)
    if level == "IMAGE":
        series_keys = {
            k: v
            for k, v in request.keys.items()
            if k in FIELDS["SERIES"] and k not in FIELDS["IMAGE"]
        }
        series = await _parent_uids(store, "SERIES", series_keys, request.facility)
        if series is not None:
            _merge_uids(query, "series_uid", series)
    if request.facility is not None:
        query["facility"] = request.facility
    projection = {"attrs": 1, "series": 1, "instances": 1, "studies": 1, "modalities": 1}
    if level == "IMAGE":
        projection["instance_number"] = 1
    sort = {
        "PATIENT": [("_id", 1)],
        "STUDY": [("q.StudyDate", -1), ("_id", 1)],
        "SERIES": [("q.SeriesNumber", 1), ("_id", 1)],
        "IMAGE": [("instance_number", 1), ("_id", 1)],
    }[level]
    cursor = (
        store[COLLECTIONS[level]]
        .find(query, projection)
        .sort(sort)
        .skip(request.offset)
        .limit(min(request.limit, MAX_RESULTS))
    )
    return [shape(level, doc) async for doc in cursor]

"""Running C-FIND and QIDO-RS searches against the index and shaping the DICOM JSON answers.

Keys of a higher level given at a lower one (``PatientName`` when searching series) are matched
relationally: the matching parents are found first and their UIDs constrain the search.
"""

from __future__ import annotations

import json
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


def _counts(level: Level, doc: Document) -> str:
    """The computed attributes of a record, as DICOM JSON members."""

    def number(tag: str, value: Any) -> str:
        return f'"{tag}":{{"vr":"IS","Value":[{int(value or 0)}]}}'

    if level == "STUDY":
        members = [number("00201206", doc.get("series")), number("00201208", doc.get("instances"))]
        modalities = [m for m in doc.get("modalities") or [] if m]
        if modalities:
            members.append(f'"00080061":{json.dumps({"vr": "CS", "Value": modalities})}')
        return ",".join(members)
    if level == "SERIES":
        return number("00201209", doc.get("instances"))
    if level == "PATIENT":
        return number("00201200", doc.get("studies"))
    return ""


def retrieve_path(level: Level, doc: Document) -> str:
    """The WADO-RS path of a matched record, relative to the DICOMweb root."""
    if level == "STUDY":
        return f"/studies/{doc['_id']}"
    if level == "SERIES":
        return f"/studies/{doc['study_uid']}/series/{doc['_id']}"
    return f"/studies/{doc['study_uid']}/series/{doc['series_uid']}/instances/{doc['_id']}"


def shape(level: Level, doc: Document, base_url: str | None = None) -> str:
    """One matched record as a DICOM JSON object string, with the computed counts.

    The stored attributes are already a JSON string; they are spliced, not re-encoded.
    """
    attrs = str(doc.get("attrs") or "{}")
    extra = _counts(level, doc)
    if base_url is not None and level != "PATIENT":
        url = json.dumps(base_url + retrieve_path(level, doc))
        retrieve = f'"00081190":{{"vr":"UR","Value":[{url}]}}'
        extra = f"{extra},{retrieve}" if extra else retrieve
    if not extra:
        return attrs
    return "{" + extra + "}" if attrs == "{}" else attrs[:-1] + "," + extra + "}"


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
    """Matches as DICOM JSON dicts (for C-FIND)."""
    return [json.loads(text) for text in await search_text(store, request)]


async def search_text(store: Store, request: Search, base_url: str | None = None) -> list[str]:
    """Matches as DICOM JSON object strings (for QIDO-RS, which sends them as they are);
    with ``base_url`` each carries its RetrieveURL."""
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
    sort = {
        "PATIENT": [("_id", 1)],
        "STUDY": [("q.StudyDate", -1), ("_id", 1)],
        "SERIES": [("q.SeriesNumber", 1), ("_id", 1)],
        "IMAGE": [("instance_number", 1), ("_id", 1)],
    }[level]
    cursor = (
        store[COLLECTIONS[level]]
        .find(query)
        .sort(sort)
        .skip(request.offset)
        .limit(min(request.limit, MAX_RESULTS))
    )
    return [shape(level, doc, base_url) async for doc in cursor]

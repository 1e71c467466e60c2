"""Where each slice of a series lies in the patient: the geometry synchronised scrolling needs.

Read from the archive's per-instance headers (``dicom_metadata``, DICOM JSON): Image Position
(Patient) and Image Orientation (Patient), per frame for enhanced multi-frame objects. Two
series are matched by position along a normal, not by index: a prior with other slice spacing or
another start still lands on the slice nearest in the patient. Geometry is cached per series,
bounded by the number of slices held (each slice is a few hundred bytes).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from server.http.errors import ApiError
from server.store.database import Store

METADATA = "dicom_metadata"
MAX_CACHED_SLICES = 100_000  # ~30 MB at most

POSITION = "00200032"
ORIENTATION = "00200037"
PER_FRAME = "52009230"
SHARED = "52009229"
PLANE_POSITION = "00209113"
PLANE_ORIENTATION = "00209116"

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class Slice:
    instance_uid: str
    frame: int
    position: Vector
    normal: Vector


class SliceSource(Protocol):
    async def series(self, study_uid: str, series_uid: str) -> list[Slice]:
        """Every slice of a series with its geometry; ``not_found`` when there is none."""


def nearest(source: Slice, target: list[Slice]) -> tuple[Slice, float]:
    """The target slice nearest to ``source`` along the source's normal, and that distance."""
    if not target:
        raise ApiError("not_found", "The linked series has no slices with a position.")
    along = _dot(source.position, source.normal)
    best = min(target, key=lambda s: abs(_dot(s.position, source.normal) - along))
    return best, abs(_dot(best.position, source.normal) - along)


class StoreSlices:
    """Slice geometry from the archive's metadata collection, cached per series."""

    def __init__(self, store: Store, max_slices: int = MAX_CACHED_SLICES) -> None:
        self._metadata = store[METADATA]
        self._cache: OrderedDict[tuple[str, str], list[Slice]] = OrderedDict()
        self._held = 0
        self._max = max_slices

    async def series(self, study_uid: str, series_uid: str) -> list[Slice]:
        key = (study_uid, series_uid)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        slices: list[Slice] = []
        cursor = self._metadata.find(
            {"series_uid": series_uid, "study_uid": study_uid}, {"json": 1}
        )
        async for doc in cursor:
            slices += slices_of(str(doc["_id"]), json.loads(doc["json"]))
        if not slices:
            raise ApiError("not_found", "No positioned slices in that series of this study.")
        self._cache[key] = slices
        self._held += len(slices)
        while self._held > self._max and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._held -= len(dropped)
        return slices


def slices_of(instance_uid: str, header: dict[str, Any]) -> list[Slice]:
    """The positioned frames of one instance (none when the header has no plane geometry)."""
    per_frame = _items(header, PER_FRAME)
    if per_frame:
        shared = (_items(header, SHARED) or [{}])[0]
        shared_orientation = _first(shared, PLANE_ORIENTATION, ORIENTATION)
        out = []
        for frame, group in enumerate(per_frame):
            position = _first(group, PLANE_POSITION, POSITION)
            orientation = _first(group, PLANE_ORIENTATION, ORIENTATION) or shared_orientation
            made = _slice(instance_uid, frame, position, orientation)
            if made is not None:
                out.append(made)
        return out
    made = _slice(instance_uid, 0, _values(header, POSITION), _values(header, ORIENTATION))
    return [made] if made is not None else []


def _slice(
    instance_uid: str, frame: int, position: list[Any] | None, orientation: list[Any] | None
) -> Slice | None:
    if not position or not orientation or len(position) != 3 or len(orientation) != 6:
        return None
    try:
        p = (float(position[0]), float(position[1]), float(position[2]))
        o = [float(v) for v in orientation]
    except (TypeError, ValueError):
        return None
    row, col = (o[0], o[1], o[2]), (o[3], o[4], o[5])
    normal = (
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    )
    return Slice(instance_uid, frame, p, normal)


def _items(header: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    value = header.get(tag, {}).get("Value")
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _values(header: dict[str, Any], tag: str) -> list[Any] | None:
    value = header.get(tag, {}).get("Value")
    return value if isinstance(value, list) else None


def _first(group: dict[str, Any], sequence: str, tag: str) -> list[Any] | None:
    items = _items(group, sequence)
    return _values(items[0], tag) if items else None


def _dot(a: Vector, b: Vector) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]

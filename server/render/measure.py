"""Measurements in real units: lengths and areas in mm, statistics in modality units.

Points are (x, y) in image pixel coordinates of the original frame (pixel centres at
integers), whatever the viewer's zoom or rotation, so a measurement means the same for every
reader in a room. A pixel belongs to an ROI when its centre lies inside the shape.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.render.decode import DecodedFrame
from server.render.errors import INVALID_MEASUREMENT, RenderError
from server.render.header import ImageInfo

Point = tuple[float, float]
IMAGER_CAVEAT = (
    "measured with Imager Pixel Spacing at the detector plane; not corrected for geometric "
    "magnification"
)


@dataclass(frozen=True)
class Calibration:
    """Pixel size in mm (row spacing, column spacing); `unit` is "px" when uncalibrated."""

    row_mm: float
    col_mm: float
    unit: str
    caveat: str | None = None


@dataclass(frozen=True)
class Length:
    value: float
    unit: str
    caveat: str | None


@dataclass(frozen=True)
class Ellipse:
    center: Point
    radius_x: float
    radius_y: float


@dataclass(frozen=True)
class Rectangle:
    corner: Point
    opposite: Point


@dataclass(frozen=True)
class Polygon:
    points: tuple[Point, ...]


Roi = Ellipse | Rectangle | Polygon


@dataclass(frozen=True)
class RoiStats:
    """Population statistics (ddof 0) over the pixels whose centres lie inside the ROI.

    `area` is the shape's geometric area in `area_unit` (mm² when calibrated).
    """

    mean: float
    std: float
    min: float
    max: float
    pixels: int
    area: float
    area_unit: str
    value_unit: str
    caveat: str | None


@dataclass(frozen=True)
class Probe:
    value: tuple[float, ...]
    value_unit: str
    patient_position: tuple[float, float, float] | None


def calibration(info: ImageInfo) -> Calibration:
    if info.pixel_spacing is None:
        return Calibration(1.0, 1.0, "px")
    caveat = IMAGER_CAVEAT if info.spacing_source == "imager_pixel_spacing" else None
    return Calibration(info.pixel_spacing[0], info.pixel_spacing[1], "mm", caveat)


def length(a: Point, b: Point, cal: Calibration) -> Length:
    _check(a, b)
    dx, dy = (b[0] - a[0]) * cal.col_mm, (b[1] - a[1]) * cal.row_mm
    return Length(math.hypot(dx, dy), cal.unit, cal.caveat)


def angle(a: Point, vertex: Point, b: Point, cal: Calibration) -> float:
    """Angle at `vertex` in degrees (0..180), measured in physical space."""
    _check(a, vertex, b)
    u = _physical(a, vertex, cal)
    v = _physical(b, vertex, cal)
    if math.hypot(*u) == 0 or math.hypot(*v) == 0:
        raise RenderError(INVALID_MEASUREMENT, "an angle needs two arms of non-zero length")
    return math.degrees(abs(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1])))


def cobb_angle(first: tuple[Point, Point], second: tuple[Point, Point], cal: Calibration) -> float:
    """Angle between two lines (0..90 degrees), whichever way each line was drawn."""
    _check(*first, *second)
    u = _physical(first[1], first[0], cal)
    v = _physical(second[1], second[0], cal)
    if math.hypot(*u) == 0 or math.hypot(*v) == 0:
        raise RenderError(INVALID_MEASUREMENT, "a Cobb angle needs two lines of non-zero length")
    between = math.degrees(abs(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1])))
    return min(between, 180.0 - between)


def roi_mask(shape: tuple[int, int], roi: Roi) -> npt.NDArray[np.bool_]:
    """Pixels of an image of `shape` (rows, columns) whose centres are inside the ROI.

    Only the ROI's bounding box is tested, so a small ROI on a 4k mammogram stays cheap.
    """
    rows, columns = shape
    _validate(roi)
    x0, y0, x1, y1 = _bounds(roi)
    r0, r1 = max(0, math.ceil(y0)), min(rows, math.floor(y1) + 1)
    c0, c1 = max(0, math.ceil(x0)), min(columns, math.floor(x1) + 1)
    mask = np.zeros(shape, dtype=bool)
    if r0 >= r1 or c0 >= c1:
        return mask
    ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float64)
    if isinstance(roi, Ellipse):
        cx, cy = roi.center
        inside = ((xs - cx) / roi.radius_x) ** 2 + ((ys - cy) / roi.radius_y) ** 2 <= 1.0
    elif isinstance(roi, Rectangle):
        inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    else:
        inside = _polygon_mask(xs, ys, roi.points)
    mask[r0:r1, c0:c1] = inside
    return mask


def _validate(roi: Roi) -> None:
    if isinstance(roi, Ellipse):
        _check(roi.center)
        if not _finite(roi.radius_x, roi.radius_y) or not (roi.radius_x > 0 and roi.radius_y > 0):
            raise RenderError(INVALID_MEASUREMENT, "ellipse radii must be finite and positive")
    elif isinstance(roi, Rectangle):
        _check(roi.corner, roi.opposite)
    else:
        if len(roi.points) < 3:
            raise RenderError(INVALID_MEASUREMENT, "a polygon needs at least three points")
        _check(*roi.points)


def _bounds(roi: Roi) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of the shape."""
    if isinstance(roi, Ellipse):
        (cx, cy), rx, ry = roi.center, roi.radius_x, roi.radius_y
        return cx - rx, cy - ry, cx + rx, cy + ry
    if isinstance(roi, Rectangle):
        points: Sequence[Point] = (roi.corner, roi.opposite)
    else:
        points = roi.points
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def roi_area(roi: Roi, cal: Calibration) -> float:
    """Geometric area of the drawn shape in cal.unit squared."""
    pixel = cal.row_mm * cal.col_mm
    if isinstance(roi, Ellipse):
        return math.pi * roi.radius_x * roi.radius_y * pixel
    if isinstance(roi, Rectangle):
        return abs(roi.opposite[0] - roi.corner[0]) * abs(roi.opposite[1] - roi.corner[1]) * pixel
    xs = np.array([p[0] for p in roi.points])
    ys = np.array([p[1] for p in roi.points])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2.0) * pixel


def roi_stats(decoded: DecodedFrame, roi: Roi) -> RoiStats:
    """Statistics in modality units (HU for CT) for a greyscale frame."""
    info = decoded.info
    if info.is_color:
        raise RenderError(INVALID_MEASUREMENT, "ROI statistics need a greyscale image")
    mask = roi_mask((info.rows, info.columns), roi)
    if not mask.any():
        raise RenderError(INVALID_MEASUREMENT, "the ROI contains no pixel centre")
    values = info.modality_lut.apply(decoded.pixels[mask])
    cal = calibration(info)
    return RoiStats(
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        pixels=int(mask.sum()),
        area=roi_area(roi, cal),
        area_unit=f"{cal.unit}²",
        value_unit=info.modality_lut.units,
        caveat=cal.caveat,
    )


def probe(decoded: DecodedFrame, point: Point) -> Probe:
    """Value under a point (nearest pixel) and where that pixel is in the patient."""
    _check(point)
    info = decoded.info
    column, row = round(point[0]), round(point[1])
    if not (0 <= row < info.rows and 0 <= column < info.columns):
        raise RenderError(INVALID_MEASUREMENT, "the point is outside the image")
    raw = decoded.pixels[row, column]
    if info.is_color:
        value = tuple(float(v) for v in np.atleast_1d(raw))
        unit = "RGB"
    else:
        value = (info.modality_lut.value(float(raw)),)
        unit = info.modality_lut.units
    return Probe(value=value, value_unit=unit, patient_position=_patient(info, column, row))


def _patient(info: ImageInfo, column: int, row: int) -> tuple[float, float, float] | None:
    if info.image_position is None or info.image_orientation is None or not info.pixel_spacing:
        return None
    origin = np.array(info.image_position)
    row_dir = np.array(info.image_orientation[:3])
    col_dir = np.array(info.image_orientation[3:])
    row_mm, col_mm = info.pixel_spacing
    where = origin + row_dir * col_mm * column + col_dir * row_mm * row
    return float(where[0]), float(where[1]), float(where[2])


def _polygon_mask(
    xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64], points: Sequence[Point]
) -> npt.NDArray[np.bool_]:
    """Even-odd rule on pixel centres, vectorised per edge."""
    inside = np.zeros(xs.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        if y0 == y1:
            continue
        crosses = (ys >= min(y0, y1)) & (ys < max(y0, y1))
        x_at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < x_at)
    return inside


def _physical(p: Point, origin: Point, cal: Calibration) -> tuple[float, float]:
    return (p[0] - origin[0]) * cal.col_mm, (p[1] - origin[1]) * cal.row_mm


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _check(*points: Point) -> None:
    for point in points:
        if len(point) != 2 or not _finite(*point):
            raise RenderError(INVALID_MEASUREMENT, "points must be pairs of finite numbers")

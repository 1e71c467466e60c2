"""Multiplanar reformation: stack a series into a volume and reslice it.

Slices (single-frame instances, or the frames of an enhanced multi-frame object with their
Per-Frame Plane Position/Orientation) are ordered by their position along the slice normal
and spaced by the measured distance between positions; Slice Thickness is not spacing and is
ignored. Stacks the reformat would misrepresent (gaps, non-parallel, gantry-tilted, mixed
geometry) are refused with the reason, because a silently wrong sagittal is worse than none.

A stack along the patient axes becomes a volume indexed [z, y, x] in LPS order, and the three
standard planes are array views. Any other plane (an oblique one asked for by its row and
column directions, or a standard plane of an obliquely acquired stack) is sampled from the
volume's voxel-to-patient geometry by trilinear interpolation.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from server.render.decode import DecodedFrame
from server.render.errors import INVALID_VIEWPORT, NOT_A_VOLUME, TOO_LARGE, RenderError
from server.render.modality_lut import ModalityLut

AXIS_TOLERANCE = 1e-3
PARALLEL_TOLERANCE = 1e-4
SPACING_TOLERANCE = 0.1
TILT_TOLERANCE = 0.01


MAX_PLANE_SIDE = 2048

Vector = tuple[float, float, float]
LPS_AXES: tuple[Vector, Vector, Vector] = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))


class Plane(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"
    OBLIQUE = "oblique"


# Row direction, column direction and the direction in which the plane index grows, as the
# canonical array views show them: head up, patient's right on the viewer's left.
STANDARD: dict[Plane, tuple[Vector, Vector, Vector]] = {
    Plane.AXIAL: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    Plane.CORONAL: ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    Plane.SAGITTAL: ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}


class SlabMode(StrEnum):
    MIP = "mip"
    MINIP = "minip"
    AVERAGE = "average"


@dataclass(frozen=True, eq=False)
class Volume:
    """Voxels indexed [z, y, x] in patient LPS order (index grows to superior, posterior,
    left), so every reslice below is a plain array view."""

    voxels: npt.NDArray[Any]
    modality: ModalityLut
    spacing: tuple[float, float, float]
    sop_instance_uids: tuple[str, ...]
    origin: Vector = (0.0, 0.0, 0.0)
    directions: tuple[Vector, Vector, Vector] = LPS_AXES

    @property
    def nbytes(self) -> int:
        return int(self.voxels.nbytes)

    @property
    def canonical(self) -> bool:
        """Array axes along +z, +y, +x of the patient: standard planes are array views."""
        return self.directions == LPS_AXES

    def to_patient(self) -> npt.NDArray[np.float64]:
        """3x3 matrix taking voxel indices (z, y, x order of the array) to patient mm."""
        return np.array(
            [np.asarray(d) * s for d, s in zip(self.directions, self.spacing, strict=True)]
        ).T


@dataclass(frozen=True, eq=False)
class MprSlice:
    """A resliced image in modality units with its pixel spacing (row, column) in mm."""

    values: npt.NDArray[np.float32]
    pixel_spacing: tuple[float, float]
    index: int
    count: int
    origin: Vector | None = None
    row_direction: Vector | None = None
    column_direction: Vector | None = None


def build_volume(frames: Sequence[DecodedFrame], *, max_bytes: int) -> Volume:
    """Stack greyscale slices of one series (or frames of one enhanced multi-frame object),
    or refuse with the reason."""
    if len(frames) < 2:
        raise RenderError(NOT_A_VOLUME, "a volume needs at least two slices")
    first = frames[0].info
    for decoded in frames:
        info = decoded.info
        if info.is_color:
            raise RenderError(NOT_A_VOLUME, "only greyscale slices can be stacked")
        if info.image_position is None or info.image_orientation is None:
            raise RenderError(NOT_A_VOLUME, "a slice lacks Image Position/Orientation (Patient)")
        if (info.rows, info.columns) != (first.rows, first.columns):
            raise RenderError(NOT_A_VOLUME, "slices differ in Rows/Columns")
        if info.pixel_spacing != first.pixel_spacing or info.pixel_spacing is None:
            raise RenderError(NOT_A_VOLUME, "slices lack or differ in Pixel Spacing")
    orientations = np.array([f.info.image_orientation for f in frames], dtype=np.float64)
    if np.abs(orientations - orientations[0]).max() > PARALLEL_TOLERANCE:
        raise RenderError(NOT_A_VOLUME, "slices are not parallel (orientations differ)")
    row_dir, col_dir = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([f.info.image_position for f in frames], dtype=np.float64)
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    positions, distance = positions[order], distance[order]
    steps = np.diff(distance)
    if steps.min() < 1e-3:
        raise RenderError(NOT_A_VOLUME, "two slices share one position")
    offsets = np.diff(positions, axis=0)
    lateral = offsets - np.outer(offsets @ normal, normal)
    if (np.linalg.norm(lateral, axis=1) > TILT_TOLERANCE * steps + 1e-3).any():
        raise RenderError(NOT_A_VOLUME, "the stack is tilted (gantry tilt or shifted slices)")
    step = float(np.median(steps))
    if (np.abs(steps - step) > SPACING_TOLERANCE * step).any():
        worst = int(np.argmax(np.abs(steps - step)))
        raise RenderError(
            NOT_A_VOLUME,
            f"uneven slice spacing: {steps[worst]:.2f} mm between slices {worst + 1} and "
            f"{worst + 2}, {step:.2f} mm elsewhere (missing or extra slices)",
        )
    axes = [_patient_axis(normal), _patient_axis(col_dir), _patient_axis(row_dir)]
    row_mm, col_mm = first.pixel_spacing or (1.0, 1.0)
    nbytes = len(frames) * frames[0].pixels.nbytes
    if nbytes > max_bytes:
        raise RenderError(TOO_LARGE, f"volume of {nbytes} bytes exceeds the {max_bytes} limit")
    modality = first.modality_lut
    shared = all(f.info.modality_lut == modality and modality.is_linear for f in frames)
    ordered = [frames[i] for i in order]
    if shared:
        stack = np.stack([f.pixels for f in ordered])
    else:
        stack = np.stack([f.info.modality_lut.apply(f.pixels).astype(np.float32) for f in ordered])
        modality = ModalityLut(units=first.modality_lut.units)
    uids = tuple(f.info.sop_instance_uid for f in ordered)
    spacing = (step, row_mm, col_mm)
    if any(axis is None for axis in axes) or sorted(a[0] for a in axes if a) != [0, 1, 2]:
        stack.setflags(write=False)
        return Volume(
            voxels=stack,
            modality=modality,
            spacing=spacing,
            sop_instance_uids=uids,
            origin=_vector(positions[0]),
            directions=(_vector(normal), _vector(col_dir), _vector(row_dir)),
        )
    aligned = [axis for axis in axes if axis is not None]
    volume = _canonical(stack, aligned, spacing, modality, uids)
    corner = [stack.shape[i] - 1 if aligned[i][1] < 0 else 0 for i in range(3)]
    origin = positions[0] + corner[0] * step * normal
    origin = origin + corner[1] * row_mm * col_dir + corner[2] * col_mm * row_dir
    return replace(volume, origin=_vector(origin))


def _vector(values: npt.NDArray[np.float64]) -> Vector:
    return float(values[0]), float(values[1]), float(values[2])


def _patient_axis(direction: npt.NDArray[np.float64]) -> tuple[int, int] | None:
    """The patient axis a direction runs along, with its sign; None if it is oblique."""
    axis = int(np.argmax(np.abs(direction)))
    if abs(direction[axis]) < 1.0 - AXIS_TOLERANCE:
        return None
    return axis, 1 if direction[axis] > 0 else -1


def _canonical(
    stack: npt.NDArray[Any],
    axes: list[tuple[int, int]],
    spacing: tuple[float, float, float],
    modality: ModalityLut,
    uids: tuple[str, ...],
) -> Volume:
    """Reorder array axes [slice, row, column] to [z, y, x] with indices growing along +LPS."""
    by_patient = {patient: (array_axis, sign) for array_axis, (patient, sign) in enumerate(axes)}
    transpose = [by_patient[2][0], by_patient[1][0], by_patient[0][0]]
    voxels = np.transpose(stack, transpose)
    flips = tuple(slice(None, None, -1) if by_patient[p][1] < 0 else slice(None) for p in (2, 1, 0))
    voxels = voxels[flips]
    spacing_zyx = (spacing[transpose[0]], spacing[transpose[1]], spacing[transpose[2]])
    voxels.setflags(write=False)
    return Volume(voxels=voxels, modality=modality, spacing=spacing_zyx, sop_instance_uids=uids)


def plane_count(volume: Volume, plane: Plane) -> int:
    if plane is Plane.OBLIQUE:
        raise RenderError(INVALID_VIEWPORT, "an oblique plane is given by its orientation")
    if not volume.canonical:
        low, high = _extent(volume, STANDARD[plane][2])
        return int(np.floor((high - low) / _step(volume) + 1e-6)) + 1
    z, y, x = volume.voxels.shape
    counts: dict[Plane, int] = {Plane.AXIAL: z, Plane.CORONAL: y, Plane.SAGITTAL: x}
    return counts[plane]


def reslice(
    volume: Volume,
    plane: Plane,
    index: int,
    *,
    slab_mm: float = 0.0,
    mode: SlabMode = SlabMode.AVERAGE,
) -> MprSlice:
    """One plane (or a slab centred on it) in modality units, head up and patient's right on
    the viewer's left (radiological convention)."""
    count = plane_count(volume, plane)
    if not 0 <= index < count:
        raise RenderError(INVALID_VIEWPORT, f"{plane} index {index} outside 0..{count - 1}")
    _check_slab(slab_mm)
    if not volume.canonical:
        row, column, normal = STANDARD[plane]
        low, _ = _extent(volume, normal)
        centre = np.asarray(_centre(volume))
        along = low + index * _step(volume) - float(centre @ np.asarray(normal))
        resampled = _resample(volume, row, column, normal, along, slab_mm, mode)
        return replace(resampled, index=index, count=count)
    dz, dy, dx = volume.spacing
    axis, across, spacing = {
        Plane.AXIAL: (0, dz, (dy, dx)),
        Plane.CORONAL: (1, dy, (dz, dx)),
        Plane.SAGITTAL: (2, dx, (dz, dy)),
    }[plane]
    thickness = max(1, round(slab_mm / across)) if slab_mm > 0 else 1
    start = max(0, index - thickness // 2)
    stop = min(count, start + thickness)
    taken = np.take(volume.voxels, np.arange(start, stop), axis=axis)
    values = volume.modality.apply(taken).astype(np.float32)
    if stop - start == 1:
        image = np.squeeze(values, axis=axis)
    elif mode is SlabMode.MIP:
        image = values.max(axis=axis)
    elif mode is SlabMode.MINIP:
        image = values.min(axis=axis)
    else:
        image = values.mean(axis=axis, dtype=np.float32)
    if plane is not Plane.AXIAL:
        image = image[::-1, :]
    return MprSlice(
        values=np.ascontiguousarray(image, dtype=np.float32),
        pixel_spacing=spacing,
        index=index,
        count=count,
    )


def reslice_oblique(
    volume: Volume,
    orientation: Sequence[float],
    *,
    offset_mm: float = 0.0,
    slab_mm: float = 0.0,
    mode: SlabMode = SlabMode.AVERAGE,
) -> MprSlice:
    """The plane with row and column directions `orientation` (six direction cosines, as in
    Image Orientation (Patient)) through the volume's centre moved `offset_mm` along its
    normal (row x column), sampled at the volume's finest spacing; outside the volume is the
    volume's lowest value."""
    if len(orientation) != 6 or not all(np.isfinite(v) for v in orientation):
        raise RenderError(INVALID_VIEWPORT, "orientation must be six finite direction cosines")
    row = np.asarray(orientation[:3], dtype=np.float64)
    column = np.asarray(orientation[3:], dtype=np.float64)
    if min(np.linalg.norm(row), np.linalg.norm(column)) < 1e-6:
        raise RenderError(INVALID_VIEWPORT, "orientation vectors cannot be zero")
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    if abs(float(row @ column)) > PERPENDICULAR_TOLERANCE:
        raise RenderError(INVALID_VIEWPORT, "the row and column directions must be perpendicular")
    if not np.isfinite(offset_mm):
        raise RenderError(INVALID_VIEWPORT, "the offset must be a finite number of mm")
    _check_slab(slab_mm)
    normal = np.cross(row, column)
    low, high = _extent(volume, _vector(normal))
    centre = float(np.asarray(_centre(volume)) @ normal)
    if not low - 1e-6 <= centre + offset_mm <= high + 1e-6:
        raise RenderError(
            INVALID_VIEWPORT,
            f"offset {offset_mm:g} mm leaves the volume ({low - centre:.1f}..{high - centre:.1f})",
        )
    return _resample(
        volume, _vector(row), _vector(column), _vector(normal), offset_mm, slab_mm, mode
    )


PERPENDICULAR_TOLERANCE = 1e-3


def _check_slab(slab_mm: float) -> None:
    if not np.isfinite(slab_mm) or slab_mm < 0:
        raise RenderError(INVALID_VIEWPORT, "slab thickness must be a finite number ≥ 0 mm")


def _step(volume: Volume) -> float:
    return float(min(volume.spacing))


def _corners(volume: Volume) -> npt.NDArray[np.float64]:
    """Patient positions of the volume's eight corner voxel centres."""
    limits = [(0, n - 1) for n in volume.voxels.shape]
    indices = np.array([[a, b, c] for a in limits[0] for b in limits[1] for c in limits[2]])
    return np.asarray(volume.origin) + indices @ volume.to_patient().T


def _centre(volume: Volume) -> Vector:
    return _vector(_corners(volume).mean(axis=0))


def _extent(volume: Volume, direction: Vector) -> tuple[float, float]:
    along = _corners(volume) @ np.asarray(direction)
    return float(along.min()), float(along.max())


def _resample(
    volume: Volume,
    row: Vector,
    column: Vector,
    normal: Vector,
    offset_mm: float,
    slab_mm: float,
    mode: SlabMode,
) -> MprSlice:
    """Sample the plane (and the slab around it) on a square grid covering the volume."""
    step = _step(volume)
    row_v, column_v, normal_v = (np.asarray(v, dtype=np.float64) for v in (row, column, normal))
    point = np.asarray(_centre(volume)) + offset_mm * normal_v
    corners = _corners(volume) - point
    u, v = corners @ row_v, corners @ column_v
    pixel = max(step, (u.max() - u.min()) / (MAX_PLANE_SIDE - 1))
    pixel = max(pixel, (v.max() - v.min()) / (MAX_PLANE_SIDE - 1))
    columns = int(np.floor((u.max() - u.min()) / pixel + 1e-6)) + 1
    rows = int(np.floor((v.max() - v.min()) / pixel + 1e-6)) + 1
    start = point + u.min() * row_v + v.min() * column_v
    grid = (
        start
        + (np.arange(columns) * pixel)[None, :, None] * row_v
        + (np.arange(rows) * pixel)[:, None, None] * column_v
    )
    half = max(0, round(slab_mm / step / 2)) if slab_mm > 0 else 0
    layers = [_trilinear(volume, grid + k * step * normal_v) for k in range(-half, half + 1)]
    if len(layers) == 1:
        stored = layers[0]
    elif mode is SlabMode.MIP:
        stored = np.max(layers, axis=0)
    elif mode is SlabMode.MINIP:
        stored = np.min(layers, axis=0)
    else:
        stored = np.mean(layers, axis=0)
    return MprSlice(
        values=np.ascontiguousarray(volume.modality.apply(stored), dtype=np.float32),
        pixel_spacing=(pixel, pixel),
        index=0,
        count=1,
        origin=_vector(start),
        row_direction=row,
        column_direction=column,
    )


def _trilinear(volume: Volume, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Stored values at patient `points` (..., 3); outside the volume, its lowest value."""
    inverse = np.linalg.inv(volume.to_patient())
    index = (points - np.asarray(volume.origin)) @ inverse.T
    shape = np.asarray(volume.voxels.shape)
    inside = np.all((index > -1e-6) & (index < shape - 1 + 1e-6), axis=-1)
    index = np.clip(index, 0, shape - 1)
    low = np.minimum(np.floor(index).astype(np.intp), np.maximum(shape - 2, 0))
    fraction = (index - low).astype(np.float32)
    voxels = volume.voxels
    result = np.zeros(points.shape[:-1], dtype=np.float32)
    for dz in (0, 1):
        wz = fraction[..., 0] if dz else 1 - fraction[..., 0]
        for dy in (0, 1):
            wy = fraction[..., 1] if dy else 1 - fraction[..., 1]
            for dx in (0, 1):
                wx = fraction[..., 2] if dx else 1 - fraction[..., 2]
                values = voxels[
                    np.minimum(low[..., 0] + dz, shape[0] - 1),
                    np.minimum(low[..., 1] + dy, shape[1] - 1),
                    np.minimum(low[..., 2] + dx, shape[2] - 1),
                ]
                result += wz * wy * wx * values.astype(np.float32)
    return np.where(inside, result, np.float32(voxels.min()))

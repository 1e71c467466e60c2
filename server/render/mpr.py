"""Multiplanar reformation: stack a series into a volume and reslice it.

Slices are ordered by their position along the slice normal and spaced by the measured
distance between positions; Slice Thickness is not spacing and is ignored. Stacks the
reformat would misrepresent (gaps, non-parallel, gantry-tilted, oblique, mixed geometry) are
refused with the reason, because a silently wrong sagittal is worse than none.
"""

from collections.abc import Sequence
from dataclasses import dataclass
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


class Plane(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


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

    @property
    def nbytes(self) -> int:
        return int(self.voxels.nbytes)


@dataclass(frozen=True, eq=False)
class MprSlice:
    """A resliced image in modality units with its pixel spacing (row, column) in mm."""

    values: npt.NDArray[np.float32]
    pixel_spacing: tuple[float, float]
    index: int
    count: int


def build_volume(frames: Sequence[DecodedFrame], *, max_bytes: int) -> Volume:
    """Stack single-frame greyscale slices of one series, or refuse with the reason."""
    if len(frames) < 2:
        raise RenderError(NOT_A_VOLUME, "a volume needs at least two slices")
    first = frames[0].info
    for decoded in frames:
        info = decoded.info
        if info.is_color or info.frames != 1:
            raise RenderError(NOT_A_VOLUME, "only single-frame greyscale slices can be stacked")
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
    if sorted(axis for axis, _ in axes) != [0, 1, 2]:
        raise RenderError(NOT_A_VOLUME, "oblique stacks cannot be reformatted")
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
    return _canonical(
        stack,
        axes,
        (step, row_mm, col_mm),
        modality,
        tuple(f.info.sop_instance_uid for f in ordered),
    )


def _patient_axis(direction: npt.NDArray[np.float64]) -> tuple[int, int]:
    axis = int(np.argmax(np.abs(direction)))
    if abs(direction[axis]) < 1.0 - AXIS_TOLERANCE:
        raise RenderError(NOT_A_VOLUME, "oblique stacks cannot be reformatted")
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
    if not np.isfinite(slab_mm) or slab_mm < 0:
        raise RenderError(INVALID_VIEWPORT, "slab thickness must be a finite number ≥ 0 mm")
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

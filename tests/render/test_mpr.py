"""MPR on synthetic series with known geometry and values."""

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from server.render.decode import DecodedFrame, decode_bytes
from server.render.errors import INVALID_VIEWPORT, NOT_A_VOLUME, TOO_LARGE, RenderError
from server.render.models import MprRequest
from server.render.mpr import (
    MprSlice,
    Plane,
    SlabMode,
    Volume,
    build_volume,
    plane_count,
    reslice,
    reslice_oblique,
)
from server.render.service import RenderService
from server.render.voi_lut import Window
from tests.render.archive import MemoryArchive
from tests.support.synthetic import INTERCEPT, ct_series, dataset_bytes

ROWS, COLS, SLICES = 32, 24, 12


def slice_hu(index: int, rows: int, cols: int) -> np.ndarray:
    """HU = 10*slice + row - column: every voxel's value tells where it is."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    return (10 * index + ys - xs).astype(np.int16)


def frames(**kwargs: object) -> list[DecodedFrame]:
    datasets = ct_series(SLICES, rows=ROWS, cols=COLS, hu=slice_hu, **kwargs)  # type: ignore[arg-type]
    return [decode_bytes(dataset_bytes(ds)) for ds in datasets]


def volume_hu(z: int, y: int, x: int) -> float:
    return float(10 * z + y - x)


def test_shuffled_slices_are_stacked_along_the_normal_with_measured_spacing() -> None:
    stack = frames(slice_spacing=2.5, slice_thickness=5.0, pixel_spacing=(0.5, 0.8))
    volume = build_volume(stack[::-1][3:] + stack[::-1][:3], max_bytes=1 << 30)
    assert volume.voxels.shape == (SLICES, ROWS, COLS)
    assert volume.spacing == pytest.approx((2.5, 0.5, 0.8))
    axial = reslice(volume, Plane.AXIAL, 4)
    assert axial.values[7, 3] == volume_hu(4, 7, 3)
    assert axial.pixel_spacing == pytest.approx((0.5, 0.8))


def test_coronal_and_sagittal_put_the_head_at_the_top() -> None:
    volume = build_volume(frames(), max_bytes=1 << 30)
    coronal = reslice(volume, Plane.CORONAL, 5)
    assert coronal.values.shape == (SLICES, COLS)
    assert coronal.values[0, 3] == volume_hu(SLICES - 1, 5, 3)
    assert coronal.pixel_spacing == pytest.approx((1.25, 0.7))
    sagittal = reslice(volume, Plane.SAGITTAL, 2)
    assert sagittal.values.shape == (SLICES, ROWS)
    assert sagittal.values[SLICES - 1, 9] == volume_hu(0, 9, 2)
    assert plane_count(volume, Plane.SAGITTAL) == COLS


def test_feet_first_stack_is_reordered_head_up() -> None:
    positions = [(0.0, 0.0, -1.25 * i) for i in range(SLICES)]
    volume = build_volume(frames(positions=positions), max_bytes=1 << 30)
    axial = reslice(volume, Plane.AXIAL, 0)
    assert axial.values[0, 0] == volume_hu(SLICES - 1, 0, 0)


@pytest.mark.parametrize(
    ("mode", "reduce"),
    [(SlabMode.MIP, np.max), (SlabMode.MINIP, np.min), (SlabMode.AVERAGE, np.mean)],
)
def test_slab_projection_over_its_thickness_in_mm(mode: SlabMode, reduce: object) -> None:
    volume = build_volume(frames(slice_spacing=2.0), max_bytes=1 << 30)
    slab = reslice(volume, Plane.AXIAL, 6, slab_mm=6.0, mode=mode)
    hu = np.stack([slice_hu(i, ROWS, COLS) for i in (5, 6, 7)]).astype(np.float32)
    np.testing.assert_allclose(slab.values, reduce(hu, axis=0))  # type: ignore[operator]


def test_a_missing_slice_is_refused_as_a_gap() -> None:
    stack = frames()
    with pytest.raises(RenderError) as caught:
        build_volume(stack[:5] + stack[6:], max_bytes=1 << 30)
    assert caught.value.code == NOT_A_VOLUME
    assert "uneven slice spacing" in caught.value.message


def test_a_gantry_tilted_stack_is_refused() -> None:
    positions = [(0.0, 0.3 * i, 1.25 * i) for i in range(SLICES)]
    with pytest.raises(RenderError) as caught:
        build_volume(frames(positions=positions), max_bytes=1 << 30)
    assert "tilted" in caught.value.message


def test_non_parallel_slices_are_refused() -> None:
    stack = frames()
    other = frames(orientation=(1.0, 0.0, 0.0, 0.0, 0.995, 0.0998))
    with pytest.raises(RenderError) as caught:
        build_volume(stack[:6] + other[6:], max_bytes=1 << 30)
    assert "not parallel" in caught.value.message


def test_oversized_volumes_are_refused() -> None:
    with pytest.raises(RenderError) as caught:
        build_volume(frames(), max_bytes=1000)
    assert caught.value.code == TOO_LARGE


def test_a_single_slice_is_not_a_volume() -> None:
    with pytest.raises(RenderError) as caught:
        build_volume(frames()[:1], max_bytes=1 << 30)
    assert caught.value.code == NOT_A_VOLUME


# -- oblique planes and enhanced multi-frame stacks ----------------------------------------------

SPACING = (0.5, 0.8)  # Pixel Spacing: between rows, between columns
STEP = 2.0
ORIGIN = np.array([-5.0, 3.0, 20.0])
TILTED = (0.866025, 0.5, 0.0, -0.5, 0.866025, 0.0)  # rotated 30 degrees about the z axis


def expected_hu(points: np.ndarray, orientation: tuple[float, ...]) -> np.ndarray:
    """slice_hu at patient points of the synthetic stack: HU = 10*slice + row - column, and
    (slice, row, column) follow from the stack's origin, directions and spacings."""
    row_dir, col_dir = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row_dir, col_dir)
    relative = points - ORIGIN
    index = relative @ normal / STEP
    row = relative @ col_dir / SPACING[0]
    column = relative @ row_dir / SPACING[1]
    return 10 * index + row - column


def stack(orientation: tuple[float, ...]) -> list[DecodedFrame]:
    return frames(
        orientation=orientation,
        pixel_spacing=SPACING,
        slice_spacing=STEP,
        origin=tuple(ORIGIN),
    )


def patient_points(plane: MprSlice) -> np.ndarray:
    assert plane.origin is not None
    assert plane.row_direction is not None
    assert plane.column_direction is not None
    rows, columns = plane.values.shape
    dy, dx = plane.pixel_spacing
    return (
        np.asarray(plane.origin)
        + (np.arange(columns) * dx)[None, :, None] * np.asarray(plane.row_direction)
        + (np.arange(rows) * dy)[:, None, None] * np.asarray(plane.column_direction)
    )


def inside(volume: Volume, points: np.ndarray) -> np.ndarray:
    index = (points - np.asarray(volume.origin)) @ np.linalg.inv(volume.to_patient()).T
    shape = np.asarray(volume.voxels.shape)
    return np.all((index >= 0) & (index <= shape - 1), axis=-1)


@pytest.mark.parametrize("acquired", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), TILTED])
@pytest.mark.parametrize(
    ("orientation", "offset"),
    [
        ((0.6, 0.8, 0.0, 0.0, 0.0, -1.0), 0.0),
        ((1.0, 0.0, 0.0, 0.0, 0.707107, -0.707107), 1.5),
        ((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), -2.0),
    ],
)
def test_an_oblique_plane_samples_the_patient_positions_it_claims(
    acquired: tuple[float, ...], orientation: tuple[float, ...], offset: float
) -> None:
    """HU is linear in patient position, so trilinear sampling must reproduce it exactly at
    every pixel inside the volume, whatever the acquisition or the plane."""
    volume = build_volume(stack(acquired), max_bytes=1 << 30)
    assert volume.canonical == (acquired[0] == 1.0)
    plane = reslice_oblique(volume, orientation, offset_mm=offset)
    points = patient_points(plane)
    within = inside(volume, points)
    assert within.sum() > 50
    np.testing.assert_allclose(
        plane.values[within], expected_hu(points, acquired)[within], atol=0.02
    )
    normal = np.cross(orientation[:3], orientation[3:])
    assert np.allclose((points - points[0, 0]) @ normal, 0.0, atol=1e-6)
    lowest = float(volume.modality.apply(volume.voxels.min()))
    assert np.all(plane.values[~within] == np.float32(lowest))


def test_an_axial_oblique_plane_through_a_slice_is_that_slice() -> None:
    volume = build_volume(stack((1.0, 0.0, 0.0, 0.0, 1.0, 0.0)), max_bytes=1 << 30)
    z_centre = ORIGIN[2] + STEP * (SLICES - 1) / 2
    for k in (0, 5, SLICES - 1):
        axial = reslice(volume, Plane.AXIAL, k)
        offset = ORIGIN[2] + STEP * k - z_centre
        oblique = reslice_oblique(volume, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), offset_mm=offset)
        # The oblique grid is isotropic at the finest spacing (0.5 mm, the row spacing), so
        # its first column is the slice's first column, row for row.
        np.testing.assert_allclose(oblique.values[:ROWS, 0], axial.values[:, 0], atol=1e-3)
        points = patient_points(oblique)
        np.testing.assert_allclose(
            oblique.values, expected_hu(points, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)), atol=0.02
        )
        assert oblique.values[0, 0] == pytest.approx(axial.values[0, 0], abs=1e-3)


def test_standard_planes_of_an_obliquely_acquired_stack_are_resampled() -> None:
    volume = build_volume(stack(TILTED), max_bytes=1 << 30)
    assert not volume.canonical
    for plane_name in (Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL):
        count = plane_count(volume, plane_name)
        plane = reslice(volume, plane_name, count // 2)
        assert (plane.index, plane.count) == (count // 2, count)
        points = patient_points(plane)
        within = inside(volume, points)
        assert within.any()
        np.testing.assert_allclose(
            plane.values[within], expected_hu(points, TILTED)[within], atol=0.02
        )
    axial = reslice(volume, Plane.AXIAL, 0)
    assert axial.row_direction == (1.0, 0.0, 0.0)
    assert axial.column_direction == (0.0, 1.0, 0.0)


def test_oblique_slab_projects_over_its_thickness() -> None:
    volume = build_volume(stack((1.0, 0.0, 0.0, 0.0, 1.0, 0.0)), max_bytes=1 << 30)
    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    thin = reslice_oblique(volume, axial, offset_mm=0.0)
    mip = reslice_oblique(volume, axial, offset_mm=0.0, slab_mm=4.0, mode=SlabMode.MIP)
    minip = reslice_oblique(volume, axial, offset_mm=0.0, slab_mm=4.0, mode=SlabMode.MINIP)
    # HU grows 5 per mm along z, so a 4 mm slab spans +-10 HU around the centre plane.
    np.testing.assert_allclose(mip.values - thin.values, 10.0, atol=0.05)
    np.testing.assert_allclose(thin.values - minip.values, 10.0, atol=0.05)


@pytest.mark.parametrize(
    ("orientation", "offset"),
    [
        ((1.0, 0.0, 0.0, 0.6, 0.8, 0.0), 0.0),
        ((0.0, 0.0, 0.0, 0.0, 1.0, 0.0), 0.0),
        ((1.0, 0.0, 0.0, 0.0, 1.0), 0.0),
        ((float("nan"), 0.0, 0.0, 0.0, 1.0, 0.0), 0.0),
        ((1.0, 0.0, 0.0, 0.0, 1.0, 0.0), 500.0),
        ((1.0, 0.0, 0.0, 0.0, 1.0, 0.0), float("inf")),
    ],
)
def test_bad_oblique_planes_are_refused(orientation: tuple[float, ...], offset: float) -> None:
    volume = build_volume(frames(), max_bytes=1 << 30)
    with pytest.raises(RenderError) as caught:
        reslice_oblique(volume, orientation, offset_mm=offset)
    assert caught.value.code == INVALID_VIEWPORT


def enhanced(
    positions: list[tuple[float, float, float]],
    orientations: list[tuple[float, ...]] | None = None,
) -> list[DecodedFrame]:
    data = enhanced_bytes(positions, orientations)
    return [decode_bytes(data, i) for i in range(len(positions))]


def enhanced_bytes(
    positions: list[tuple[float, float, float]],
    orientations: list[tuple[float, ...]] | None = None,
) -> bytes:
    """An enhanced CT object (Part 10 bytes) with one frame per position, slice_hu values, and
    Plane Position/Orientation in its Per-Frame Functional Groups (none at the top level)."""
    n = len(positions)
    ds = ct_series(n, rows=ROWS, cols=COLS, hu=slice_hu)[0]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.NumberOfFrames = n
    pixels = [(slice_hu(i, ROWS, COLS).astype(np.int32) - INTERCEPT) for i in range(n)]
    ds.PixelData = np.stack(pixels).astype("<u2").tobytes()
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, keyword)
    measures = Dataset()
    measures.PixelSpacing = [str(v) for v in SPACING]
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for i, position in enumerate(positions):
        where, facing, item = Dataset(), Dataset(), Dataset()
        where.ImagePositionPatient = [f"{v:.6g}" for v in position]
        facing.ImageOrientationPatient = [
            f"{v:.6g}" for v in (orientations[i] if orientations else TILTED)
        ]
        item.PlanePositionSequence = DicomSequence([where])
        item.PlaneOrientationSequence = DicomSequence([facing])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return dataset_bytes(ds)


def tilted_positions(n: int, step: float = STEP) -> list[tuple[float, float, float]]:
    normal = np.cross(TILTED[:3], TILTED[3:])
    points = [ORIGIN + normal * step * i for i in range(n)]
    return [(float(p[0]), float(p[1]), float(p[2])) for p in points]


def test_an_enhanced_multi_frame_object_stacks_by_its_per_frame_geometry() -> None:
    positions = tilted_positions(6)
    shuffled = enhanced(positions)
    volume = build_volume(shuffled[3:] + shuffled[:3], max_bytes=1 << 30)
    assert volume.voxels.shape == (6, ROWS, COLS)
    assert volume.spacing == pytest.approx((STEP, *SPACING))
    assert volume.origin == pytest.approx(tuple(ORIGIN))
    plane = reslice_oblique(volume, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), offset_mm=0.5)
    points = patient_points(plane)
    within = inside(volume, points)
    assert within.any()
    np.testing.assert_allclose(plane.values[within], expected_hu(points, TILTED)[within], atol=0.02)


def test_enhanced_multi_frame_gaps_tilts_and_turns_are_refused() -> None:
    gap = tilted_positions(6)
    del gap[3]
    with pytest.raises(RenderError) as caught:
        build_volume(enhanced(gap), max_bytes=1 << 30)
    assert "uneven slice spacing" in caught.value.message
    shifted = tilted_positions(6)
    shifted[4] = (shifted[4][0] + 1.5, shifted[4][1], shifted[4][2])
    with pytest.raises(RenderError) as caught:
        build_volume(enhanced(shifted), max_bytes=1 << 30)
    assert "tilted" in caught.value.message
    turned = [TILTED] * 6
    turned[2] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    with pytest.raises(RenderError) as caught:
        build_volume(enhanced(tilted_positions(6), turned), max_bytes=1 << 30)
    assert "not parallel" in caught.value.message


async def test_the_service_builds_a_volume_from_one_enhanced_object() -> None:
    archive = MemoryArchive([])
    archive.add("1.2.826.0.1.9", "1.2.826.0.1.8", enhanced_bytes(tilted_positions(5)), "1.2.3")
    service = RenderService(archive)
    try:
        volume = await service.volume("1.2.826.0.1.8")
        assert volume.voxels.shape == (5, ROWS, COLS)
        assert volume.origin == pytest.approx(tuple(ORIGIN))
        request = MprRequest(
            "1.2.826.0.1.8",
            Plane.OBLIQUE,
            0,
            orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
            window=Window(0.0, 400.0),
        )
        frame = await service.render_mpr(request)
        assert frame.media_type == "image/jpeg"
        with pytest.raises(RenderError) as caught:
            await service.render_mpr(MprRequest("1.2.826.0.1.8", Plane.OBLIQUE, 0))
        assert caught.value.code == INVALID_VIEWPORT
    finally:
        await service.close()

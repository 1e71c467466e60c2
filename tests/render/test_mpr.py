"""MPR on synthetic series with known geometry and values."""

import numpy as np
import pytest

from server.render.decode import DecodedFrame, decode_bytes
from server.render.errors import NOT_A_VOLUME, TOO_LARGE, RenderError
from server.render.mpr import Plane, SlabMode, build_volume, plane_count, reslice
from tests.support.synthetic import ct_series, dataset_bytes

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


def test_oblique_stacks_and_oversized_volumes_are_refused() -> None:
    with pytest.raises(RenderError) as caught:
        build_volume(frames(orientation=(1.0, 0.0, 0.0, 0.0, 0.8, 0.6)), max_bytes=1 << 30)
    assert "oblique" in caught.value.message
    with pytest.raises(RenderError) as caught:
        build_volume(frames(), max_bytes=1000)
    assert caught.value.code == TOO_LARGE


def test_a_single_slice_is_not_a_volume() -> None:
    with pytest.raises(RenderError) as caught:
        build_volume(frames()[:1], max_bytes=1 << 30)
    assert caught.value.code == NOT_A_VOLUME

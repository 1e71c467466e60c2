"""Measurements against hand-computed distances and numpy over the same mask."""

import math

import numpy as np
import pytest

from server.render.decode import DecodedFrame, decode_bytes
from server.render.errors import INVALID_MEASUREMENT, RenderError
from server.render.measure import (
    IMAGER_CAVEAT,
    Calibration,
    Ellipse,
    Polygon,
    Rectangle,
    angle,
    calibration,
    cobb_angle,
    length,
    probe,
    roi_mask,
    roi_stats,
)
from tests.support.synthetic import ct_series, dataset_bytes

ANISOTROPIC = Calibration(row_mm=0.5, col_mm=0.8, unit="mm")


def ramp_hu(index: int, rows: int, cols: int) -> np.ndarray:
    ys, xs = np.mgrid[0:rows, 0:cols]
    return (3 * ys - 2 * xs + index).astype(np.int16)


def ct_frame(**kwargs: object) -> DecodedFrame:
    ds = ct_series(1, rows=40, cols=30, hu=ramp_hu, pixel_spacing=(0.5, 0.8), **kwargs)[0]  # type: ignore[arg-type]
    return decode_bytes(dataset_bytes(ds))


def test_length_uses_row_and_column_spacing() -> None:
    # 30 columns * 0.8 = 24 mm across, 14 rows * 0.5 = 7 mm down → sqrt(576 + 49) = 25
    assert length((0, 0), (30, 14), ANISOTROPIC).value == pytest.approx(25.0)


def test_uncalibrated_lengths_are_in_pixels() -> None:
    result = length((0, 0), (3, 4), Calibration(1.0, 1.0, "px"))
    assert (result.value, result.unit) == (5.0, "px")


def test_imager_pixel_spacing_carries_the_magnification_caveat() -> None:
    ds = ct_series(1, rows=8, cols=8)[0]
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.2, 0.2]
    cal = calibration(decode_bytes(dataset_bytes(ds)).info)
    assert cal.caveat == IMAGER_CAVEAT
    assert length((0, 0), (10, 0), cal).caveat == IMAGER_CAVEAT
    assert calibration(ct_frame().info).caveat is None


def test_angle_is_measured_in_physical_space() -> None:
    square = Calibration(1.0, 1.0, "mm")
    assert angle((10, 0), (0, 0), (0, 10), square) == pytest.approx(90.0)
    # pixels (1, 1) from the vertex are 0.8 mm right and 0.5 mm down: atan(0.5/0.8) from x
    assert angle((1, 0), (0, 0), (1, 1), ANISOTROPIC) == pytest.approx(
        math.degrees(math.atan2(0.5, 0.8))
    )


def test_cobb_angle_ignores_the_direction_lines_were_drawn() -> None:
    square = Calibration(1.0, 1.0, "mm")
    first = ((0.0, 0.0), (10.0, 0.0))
    tilted = ((0.0, 0.0), (10.0, 10.0 * math.tan(math.radians(25))))
    assert cobb_angle(first, tilted, square) == pytest.approx(25.0)
    reversed_line = (tilted[1], tilted[0])
    assert cobb_angle(first, reversed_line, square) == pytest.approx(25.0)
    assert cobb_angle(((0, 0), (0, 10)), ((0, 0), (10, 0)), square) == pytest.approx(90.0)


def test_ellipse_mask_counts_pixel_centres_inside() -> None:
    mask = roi_mask((5, 5), Ellipse((2.0, 2.0), 1.0, 1.0))
    expected = np.zeros((5, 5), dtype=bool)
    expected[2, 1:4] = True
    expected[1:4, 2] = True
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_of_a_triangle() -> None:
    mask = roi_mask((6, 6), Polygon(((0.5, 0.5), (4.5, 0.5), (0.5, 4.5))))
    ys, xs = np.mgrid[0:6, 0:6]
    expected = (xs >= 0.5) & (ys >= 0.5) & (xs + ys < 5.0)
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    "roi",
    [
        Ellipse((15.0, 20.0), 6.5, 9.0),
        Rectangle((3.0, 4.0), (12.0, 30.0)),
        Polygon(((2.0, 2.0), (25.0, 5.0), (20.0, 35.0), (4.0, 30.0))),
    ],
)
def test_roi_statistics_match_numpy_on_the_same_mask(roi: Ellipse | Rectangle | Polygon) -> None:
    decoded = ct_frame()
    stats = roi_stats(decoded, roi)
    hu = ramp_hu(0, 40, 30).astype(np.float64)[roi_mask((40, 30), roi)]
    assert stats.pixels == hu.size
    assert stats.mean == pytest.approx(hu.mean())
    assert stats.std == pytest.approx(hu.std())
    assert (stats.min, stats.max) == (hu.min(), hu.max())
    assert stats.value_unit == "HU"
    assert stats.area_unit == "mm²"


def test_roi_areas_are_geometric_in_square_millimetres() -> None:
    decoded = ct_frame()
    assert roi_stats(decoded, Rectangle((3, 4), (13, 24))).area == pytest.approx(10 * 20 * 0.4)
    assert roi_stats(decoded, Ellipse((15, 20), 5, 8)).area == pytest.approx(math.pi * 40 * 0.4)
    triangle = Polygon(((0, 0), (10, 0), (0, 10)))
    assert roi_stats(decoded, triangle).area == pytest.approx(50 * 0.4)


def test_probe_reads_modality_units_and_patient_position() -> None:
    decoded = ct_frame(origin=(-10.0, -20.0, 5.0))
    result = probe(decoded, (4.2, 7.0))
    assert result.value == (3 * 7 - 2 * 4,)
    assert result.value_unit == "HU"
    assert result.patient_position == pytest.approx((-10.0 + 4 * 0.8, -20.0 + 7 * 0.5, 5.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda d: probe(d, (100.0, 0.0)),
        lambda d: probe(d, (math.nan, 0.0)),
        lambda d: roi_stats(d, Ellipse((5, 5), 0.0, 3.0)),
        lambda d: roi_stats(d, Polygon(((0, 0), (1, 1)))),
        lambda d: roi_stats(d, Rectangle((100, 100), (120, 120))),
        lambda d: angle((0, 0), (0, 0), (1, 1), ANISOTROPIC),
        lambda d: length((0, math.inf), (1, 1), ANISOTROPIC),
    ],
)
def test_invalid_measurements_are_refused(call: object) -> None:
    with pytest.raises(RenderError) as caught:
        call(ct_frame())  # type: ignore[operator]
    assert caught.value.code == INVALID_MEASUREMENT

"""Grey levels after each LUT, against values computed by hand from PS3.3 C.11.2.1.2."""

import math

import numpy as np
import pytest

from server.render.errors import INVALID_WINDOW, RenderError
from server.render.lut import Lut
from server.render.modality_lut import ModalityLut
from server.render.voi_lut import VoiFunction, Window, render_grey, window_values

CT = ModalityLut(slope=1.0, intercept=-1024.0, units="HU")
CT_RANGE = (0, 4095)


def grey_at_hu(hu: list[float], window: Window, *, invert: bool = False) -> list[int]:
    stored = (np.array(hu, dtype=np.int32) + 1024).astype(np.uint16).reshape(1, -1)
    return render_grey(stored, CT, window, invert=invert, stored_range=CT_RANGE)[0].tolist()


def close(actual: list[int], expected: list[float]) -> bool:
    return all(abs(a - e) <= 1 for a, e in zip(actual, expected, strict=True))


def test_linear_window_matches_hand_computed_levels() -> None:
    # c=40, w=400: 0 at or below 40-0.5-199.5 = -160, 255 above 239;
    # 0 HU → ((0-39.5)/399+0.5)*255 = 102.26; 40 → 127.82; 100 → 166.17
    window = Window(40.0, 400.0)
    actual = grey_at_hu([-1000, -160, 0, 40, 100, 239, 240, 3000], window)
    assert close(actual, [0, 0, 102.26, 127.82, 166.17, 255, 255, 255])
    assert actual[1] == 0
    assert actual[-2:] == [255, 255]


def test_linear_exact_window_matches_hand_computed_levels() -> None:
    # c=40, w=400: 0 HU → (-0.1+0.5)*255 = 102; 140 → 191.25; 240 exactly the top → 255
    window = Window(40.0, 400.0, VoiFunction.LINEAR_EXACT)
    assert close(grey_at_hu([-160, 0, 140, 240], window), [0, 102, 191.25, 255])


def test_sigmoid_window_matches_hand_computed_levels() -> None:
    # 255 / (1 + exp(-4 (x - c) / w)): 40 → 127.5, 140 → 186.42, -60 → 68.58
    window = Window(40.0, 400.0, VoiFunction.SIGMOID)
    assert close(grey_at_hu([40, 140, -60], window), [127.5, 186.42, 68.58])


def test_narrow_linear_window_of_width_one_is_a_threshold() -> None:
    window = Window(10.0, 1.0)
    assert grey_at_hu([8, 9, 10, 11], window) == [0, 0, 255, 255]


def test_inversion_mirrors_the_grey_levels() -> None:
    window = Window(40.0, 400.0)
    plain = grey_at_hu([-200, 0, 40, 300], window)
    inverted = grey_at_hu([-200, 0, 40, 300], window, invert=True)
    assert [255 - g for g in plain] == inverted


@pytest.mark.parametrize("function", list(VoiFunction))
@pytest.mark.parametrize(("center", "width"), [(40, 400), (-600, 1500), (32, 8), (1000, 2.5)])
def test_fast_paths_agree_with_the_formulas_for_every_stored_value(
    function: VoiFunction, center: float, width: float
) -> None:
    window = Window(center, width, function)
    stored = np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)
    grey = render_grey(stored, CT, window, invert=False, stored_range=CT_RANGE)
    expected = window_values(stored.astype(np.float64) - 1024, window)
    assert np.abs(grey.astype(np.float64) - expected).max() <= 1.0


def test_signed_stored_values_with_slope_are_windowed_in_real_units() -> None:
    modality = ModalityLut(slope=2.0, intercept=-10.0)
    stored = np.array([[-300, -5, 0, 5, 300]], dtype=np.int16)
    grey = render_grey(stored, modality, Window(0.0, 101.0), invert=False, stored_range=None)
    # real values -610, -20, -10, 0, 590 → ((x + 0.5) / 100 + 0.5) * 255
    assert close(grey[0].tolist(), [0, 77.78, 103.28, 128.78, 255])


def test_voi_lut_sequence_scales_its_output_bits_to_grey() -> None:
    table = np.array([0, 1024, 2048, 4095], dtype=np.uint16)
    lut = Lut(first_mapped=10, bits=12, table=table)
    stored = np.array([[0, 10, 11, 12, 13, 99]], dtype=np.uint16)
    grey = render_grey(stored, ModalityLut(), lut, invert=False, stored_range=(0, 4095))
    assert close(grey[0].tolist(), [0, 0, 63.77, 127.53, 255, 255])


def test_modality_lut_sequence_feeds_the_window() -> None:
    table = np.array([100, 200, 300], dtype=np.uint16)
    modality = ModalityLut(lut=Lut(first_mapped=0, bits=16, table=table))
    stored = np.array([[0, 1, 2, 7]], dtype=np.uint16)
    grey = render_grey(stored, modality, Window(200.0, 201.0), invert=False, stored_range=(0, 7))
    # 100 → ((100 - 199.5)/200 + 0.5)*255 = 0.6375; 200 → 128.14; 300 → 255
    assert close(grey[0].tolist(), [0.64, 128.14, 255, 255])


@pytest.mark.parametrize(
    ("center", "width", "function"),
    [
        (40.0, 0.0, VoiFunction.LINEAR),
        (40.0, -5.0, VoiFunction.LINEAR_EXACT),
        (40.0, 0.5, VoiFunction.LINEAR),
        (math.nan, 400.0, VoiFunction.LINEAR),
        (40.0, math.inf, VoiFunction.SIGMOID),
        (40.0, 0.0, VoiFunction.SIGMOID),
    ],
)
def test_invalid_windows_are_refused(center: float, width: float, function: VoiFunction) -> None:
    with pytest.raises(RenderError) as caught:
        Window(center, width, function)
    assert caught.value.code == INVALID_WINDOW

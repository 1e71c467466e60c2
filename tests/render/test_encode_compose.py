"""Encoding round trips and the composed pipeline on a synthetic CT."""

import cv2
import numpy as np
import pytest

from server.render.compose import choose_voi, render_image, render_tile
from server.render.decode import decode_bytes
from server.render.encode import Encoding, ImageFormat, encode
from server.render.errors import INVALID_QUALITY, INVALID_WINDOW, RenderError
from server.render.presets import presets_for
from server.render.tiles import tile_box
from server.render.viewport import Viewport
from server.render.voi_lut import Window
from tests.support.synthetic import ct_series, dataset_bytes


def test_png_is_lossless_and_jpeg_is_close() -> None:
    image = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 251).astype(np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    png = encode(image, Encoding(ImageFormat.PNG))
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), 0), image)
    jpeg = encode(image, Encoding(ImageFormat.JPEG, 95))
    back = cv2.imdecode(np.frombuffer(jpeg, np.uint8), 0)
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 2


def test_rgb_channels_keep_their_order_through_jpeg() -> None:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[..., 0] = 250
    back = cv2.imdecode(np.frombuffer(encode(image, Encoding()), np.uint8), cv2.IMREAD_COLOR)
    assert back[8, 8, 2] > 240
    assert back[8, 8, 0] < 10


@pytest.mark.parametrize("quality", [0, 101])
def test_quality_out_of_range_is_refused(quality: int) -> None:
    with pytest.raises(RenderError) as caught:
        Encoding(quality=quality)
    assert caught.value.code == INVALID_QUALITY


def test_ct_renders_with_its_own_window_and_presets() -> None:
    decoded = decode_bytes(dataset_bytes(ct_series(1, rows=64, cols=64)[0]))
    voi = choose_voi(decoded.info, decoded.pixels)
    assert voi == Window(40.0, 400.0)
    image = render_image(decoded, voi, Viewport())
    assert image[32, 32] == 128
    assert image[63, 0] == 0
    names = [p.name for p in presets_for(decoded.info)]
    assert names[0] == "object-1"
    assert {"brain", "subdural", "stroke", "lung", "mediastinum", "bone", "liver"} <= set(names)
    lung = choose_voi(decoded.info, decoded.pixels, preset="lung")
    assert lung == Window(-600.0, 1500.0, explanation="lung")
    with pytest.raises(RenderError) as caught:
        choose_voi(decoded.info, decoded.pixels, preset="nonsense")
    assert caught.value.code == INVALID_WINDOW


def test_level_zero_tile_equals_the_same_region_of_the_full_render() -> None:
    decoded = decode_bytes(dataset_bytes(ct_series(1, rows=600, cols=520)[0]))
    full = render_image(decoded, None, Viewport())
    box = tile_box(600, 520, 0, 1, 2)
    np.testing.assert_array_equal(render_tile(decoded, None, box), full[512:600, 256:512])

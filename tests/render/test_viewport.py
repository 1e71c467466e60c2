"""Viewport geometry: orientation, fit, zoom, pan, pixel aspect, canvas limits; and tiles."""

import math

import numpy as np
import pytest

from server.render.errors import (
    INVALID_CANVAS,
    INVALID_TILE,
    INVALID_VIEWPORT,
    RenderError,
)
from server.render.tiles import level_count, shrink_tile, tile_box, tiles_at
from server.render.viewport import Viewport, apply_viewport, output_size

IMAGE = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10
SQUARE = (1.0, 1.0)


def test_natural_size_without_changes_is_the_image_itself() -> None:
    np.testing.assert_array_equal(apply_viewport(IMAGE, SQUARE, Viewport()), IMAGE)


@pytest.mark.parametrize(("rotation", "turns"), [(90, -1), (180, 2), (270, 1), (-90, 1)])
def test_rotation_is_clockwise_by_quarter_turns(rotation: int, turns: int) -> None:
    out = apply_viewport(IMAGE, SQUARE, Viewport(rotation=rotation))
    np.testing.assert_array_equal(out, np.rot90(IMAGE, k=turns))


def test_flips_mirror_the_image_axes() -> None:
    np.testing.assert_array_equal(
        apply_viewport(IMAGE, SQUARE, Viewport(flip_horizontal=True)), IMAGE[:, ::-1]
    )
    np.testing.assert_array_equal(
        apply_viewport(IMAGE, SQUARE, Viewport(flip_vertical=True)), IMAGE[::-1, :]
    )


def test_flip_applies_before_rotation() -> None:
    out = apply_viewport(IMAGE, SQUARE, Viewport(rotation=90, flip_horizontal=True))
    np.testing.assert_array_equal(out, np.rot90(IMAGE[:, ::-1], k=-1))


def test_integer_zoom_into_a_canvas_repeats_pixels() -> None:
    image = np.array([[0, 100], [200, 250]], dtype=np.uint8)
    out = apply_viewport(image, SQUARE, Viewport(canvas=(8, 8), zoom=1.0))
    assert out.shape == (8, 8)
    assert out[1, 1] == 0
    assert out[1, 6] == 100
    assert out[6, 1] == 200
    assert out[6, 6] == 250


def test_fit_letterboxes_a_tall_image_in_a_wide_canvas() -> None:
    image = np.full((100, 50), 200, dtype=np.uint8)
    out = apply_viewport(image, SQUARE, Viewport(canvas=(200, 100)))
    assert out.shape == (100, 200)
    assert out[50, 100] == 200
    assert out[50, 10] == 0
    assert out[50, 190] == 0


def test_pan_moves_the_image_by_a_fraction_of_the_canvas() -> None:
    image = np.zeros((100, 100), dtype=np.uint8)
    image[45:55, 45:55] = 255
    out = apply_viewport(image, SQUARE, Viewport(canvas=(100, 100), pan_x=0.25))
    assert out[50, 75] == 255
    assert out[50, 50] == 0


def test_pixel_aspect_ratio_stretches_the_coarser_axis() -> None:
    image = np.zeros((10, 20), dtype=np.uint8)
    assert output_size(10, 20, (2.0, 1.0), Viewport()) == (20, 20)
    assert apply_viewport(image, (2.0, 1.0), Viewport()).shape == (20, 20)


def test_downscaling_averages_pixels() -> None:
    image = np.tile(np.array([[0, 255], [255, 0]], dtype=np.uint8), (50, 50))
    out = apply_viewport(image, SQUARE, Viewport(canvas=(10, 10)))
    assert out.shape == (10, 10)
    assert abs(float(out[2:8, 2:8].mean()) - 127.5) < 2


@pytest.mark.parametrize("canvas", [(0, 512), (512, 0), (100000, 512), (512, 100000), (-1, 5)])
def test_canvas_outside_limits_is_refused(canvas: tuple[int, int]) -> None:
    with pytest.raises(RenderError) as caught:
        Viewport(canvas=canvas)
    assert caught.value.code == INVALID_CANVAS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"zoom": math.nan},
        {"zoom": 0.0},
        {"zoom": 1000.0},
        {"pan_x": math.inf},
        {"pan_y": 100.0},
        {"rotation": 45},
    ],
)
def test_invalid_viewport_values_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(RenderError) as caught:
        Viewport(**kwargs)  # type: ignore[arg-type]
    assert caught.value.code == INVALID_VIEWPORT


def test_tile_pyramid_levels_and_boxes() -> None:
    assert level_count(256, 256) == 1
    assert level_count(1955, 1841) == 4
    assert tiles_at(1955, 1841, 0) == (8, 8)
    assert tiles_at(1955, 1841, 3) == (1, 1)
    edge = tile_box(1955, 1841, 0, 7, 7)
    assert (edge.row0, edge.row1, edge.col0, edge.col1) == (1792, 1955, 1792, 1841)
    assert (edge.width, edge.height) == (49, 163)
    top = tile_box(1955, 1841, 3, 0, 0)
    assert (top.row1, top.col1, top.width, top.height) == (1955, 1841, 231, 245)


def test_tile_shrinks_by_area_average() -> None:
    region = np.zeros((512, 512), dtype=np.uint8)
    region[:, 256:] = 200
    box = tile_box(512, 512, 1, 0, 0)
    tile = shrink_tile(region, box)
    assert tile.shape == (256, 256)
    assert tile[0, 0] == 0
    assert tile[0, 255] == 200


@pytest.mark.parametrize(("level", "x", "y"), [(-1, 0, 0), (4, 0, 0), (0, 8, 0), (0, 0, -1)])
def test_tiles_outside_the_pyramid_are_refused(level: int, x: int, y: int) -> None:
    with pytest.raises(RenderError) as caught:
        tile_box(1955, 1841, level, x, y)
    assert caught.value.code == INVALID_TILE

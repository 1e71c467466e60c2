"""A 256x256 tile pyramid for images larger than the canvas (mammography, CR, later slides).

Level 0 is full resolution and each level halves it, up to the level where the whole image
fits one tile. Tiles are cut from the stored values before windowing, so a tile costs work in
proportion to its own area, not the image's.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from server.render.errors import INVALID_TILE, RenderError

TILE_SIZE = 256


@dataclass(frozen=True)
class TileBox:
    """The source pixels a tile covers (half-open) and the tile's output size."""

    row0: int
    row1: int
    col0: int
    col1: int
    width: int
    height: int


def level_count(rows: int, columns: int) -> int:
    largest = max(rows, columns)
    return 1 + max(0, math.ceil(math.log2(largest / TILE_SIZE))) if largest > 0 else 1


def tiles_at(rows: int, columns: int, level: int) -> tuple[int, int]:
    """How many tiles across and down at `level`."""
    factor = 1 << level
    level_w = math.ceil(columns / factor)
    level_h = math.ceil(rows / factor)
    return math.ceil(level_w / TILE_SIZE), math.ceil(level_h / TILE_SIZE)


def tile_box(rows: int, columns: int, level: int, x: int, y: int) -> TileBox:
    if not 0 <= level < level_count(rows, columns):
        raise RenderError(
            INVALID_TILE, f"level {level} outside 0..{level_count(rows, columns) - 1}"
        )
    across, down = tiles_at(rows, columns, level)
    if not (0 <= x < across and 0 <= y < down):
        raise RenderError(INVALID_TILE, f"tile ({x}, {y}) outside {across}x{down} at level {level}")
    span = TILE_SIZE << level
    row0, col0 = y * span, x * span
    row1, col1 = min(rows, row0 + span), min(columns, col0 + span)
    factor = 1 << level
    return TileBox(
        row0=row0,
        row1=row1,
        col0=col0,
        col1=col1,
        width=max(1, math.ceil((col1 - col0) / factor)),
        height=max(1, math.ceil((row1 - row0) / factor)),
    )


def shrink_tile(region: npt.NDArray[np.uint8], box: TileBox) -> npt.NDArray[np.uint8]:
    """Area-average a windowed region down to its tile size (no-op at level 0)."""
    if region.shape[:2] == (box.height, box.width):
        return region
    out = cv2.resize(region, (box.width, box.height), interpolation=cv2.INTER_AREA)
    return np.asarray(out, dtype=np.uint8)

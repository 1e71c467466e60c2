"""Place a display image on the client's canvas: zoom, pan, 90° rotation, flips, pixel aspect.

The whole placement is one affine matrix and at most one resampling, so quality does not
degrade through successive steps and the cost is a single OpenCV pass. Pan is a fraction of
the canvas, so followers with other screen sizes see the same part of the image.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from server.render.errors import INVALID_CANVAS, INVALID_VIEWPORT, RenderError

MAX_CANVAS = 8192
MIN_ZOOM = 0.01
MAX_ZOOM = 64.0
MAX_PAN = 16.0
NEAREST_FROM_SCALE = 4.0


@dataclass(frozen=True)
class Viewport:
    """How an image sits in the canvas; `canvas` None means the image's natural size.

    `zoom` 1 fits the whole image in the canvas; `pan_x`/`pan_y` move the image centre by
    that fraction of the canvas width/height; `rotation` is clockwise in degrees (multiple of
    90); flips apply before rotation, in image axes.

    `region` is PS3.18's source rectangle (sx, sy, sw, sh) in image pixels: only that part of
    the image is shown, as if it were the whole image. Its corners are (sx, sy) and
    (sx + sw, sy + sh), so a negative width or height reads the region mirrored; sw or sh
    None extends it to the image's edge.
    """

    canvas: tuple[int, int] | None = None
    zoom: float = 1.0
    pan_x: float = 0.0
    pan_y: float = 0.0
    rotation: int = 0
    flip_horizontal: bool = False
    flip_vertical: bool = False
    invert: bool = False
    region: tuple[int, int, int | None, int | None] | None = None

    def __post_init__(self) -> None:
        if self.canvas is not None:
            width, height = self.canvas
            if not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
                raise RenderError(
                    INVALID_CANVAS, f"canvas must be 1..{MAX_CANVAS} pixels on each side"
                )
        for name, value in (("zoom", self.zoom), ("pan_x", self.pan_x), ("pan_y", self.pan_y)):
            if not math.isfinite(value):
                raise RenderError(INVALID_VIEWPORT, f"{name} must be a finite number")
        if not MIN_ZOOM <= self.zoom <= MAX_ZOOM:
            raise RenderError(INVALID_VIEWPORT, f"zoom must be within {MIN_ZOOM}..{MAX_ZOOM}")
        if abs(self.pan_x) > MAX_PAN or abs(self.pan_y) > MAX_PAN:
            raise RenderError(INVALID_VIEWPORT, f"pan must be within ±{MAX_PAN} canvases")
        if self.rotation % 90 != 0:
            raise RenderError(INVALID_VIEWPORT, "rotation must be a multiple of 90 degrees")
        if self.region is not None:
            sx, sy, sw, sh = self.region
            if sx < 0 or sy < 0:
                raise RenderError(INVALID_VIEWPORT, "the source region starts at sx,sy >= 0")
            if sw == 0 or sh == 0:
                raise RenderError(INVALID_VIEWPORT, "the source region cannot be empty")


@dataclass(frozen=True)
class SourceRegion:
    """A region resolved against an image: the slices to cut and whether to mirror them."""

    rows: slice
    columns: slice
    flip_horizontal: bool
    flip_vertical: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.columns.stop - self.columns.start


def source_region(
    rows: int, columns: int, region: tuple[int, int, int | None, int | None]
) -> SourceRegion:
    """The region's pixels within an image of `rows` x `columns`; outside it is refused."""
    sx, sy, sw, sh = region
    x0, x1 = _extent(sx, columns - sx if sw is None else sw)
    y0, y1 = _extent(sy, rows - sy if sh is None else sh)
    if not (0 <= x0 < x1 <= columns and 0 <= y0 < y1 <= rows):
        raise RenderError(
            INVALID_VIEWPORT,
            f"the source region must lie within the {columns}x{rows} image",
        )
    return SourceRegion(
        slice(y0, y1), slice(x0, x1), sw is not None and sw < 0, sh is not None and sh < 0
    )


def _extent(start: int, length: int) -> tuple[int, int]:
    return (start, start + length) if length >= 0 else (start + length, start)


def output_size(
    rows: int, columns: int, aspect: tuple[float, float], viewport: Viewport
) -> tuple[int, int]:
    """Width and height of the rendered frame."""
    if viewport.canvas is not None:
        return viewport.canvas
    if viewport.region is not None:
        rows, columns = source_region(rows, columns, viewport.region).shape
    width, height = _display_size(rows, columns, aspect, viewport.rotation)
    width, height = max(1, round(width)), max(1, round(height))
    if width > MAX_CANVAS or height > MAX_CANVAS:
        shrink = MAX_CANVAS / max(width, height)
        width, height = max(1, int(width * shrink)), max(1, int(height * shrink))
    return width, height


def apply_viewport(
    image: npt.NDArray[np.uint8], aspect: tuple[float, float], viewport: Viewport
) -> npt.NDArray[np.uint8]:
    """Resample `image` (HxW or HxWx3) onto the canvas; outside the image is black."""
    if _is_identity(viewport, aspect):
        return image
    rows, columns = image.shape[:2]
    width, height = output_size(rows, columns, aspect, viewport)
    matrix, scale = _matrix(rows, columns, aspect, viewport, width, height)
    if scale < 1.0:
        small_w = max(1, round(columns * scale * _unit(aspect)[1]))
        small_h = max(1, round(rows * scale * _unit(aspect)[0]))
        image = np.asarray(
            cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        matrix = _matrix_for(small_h, small_w, (1.0, 1.0), viewport, width, height, 1.0)
        interpolation = cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_NEAREST if scale >= NEAREST_FROM_SCALE else cv2.INTER_LINEAR
    if (width, height) == (columns, rows) and np.allclose(matrix, np.eye(2, 3), atol=1e-9):
        return image
    out = cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return np.asarray(out, dtype=np.uint8)


def _is_identity(viewport: Viewport, aspect: tuple[float, float]) -> bool:
    """The natural-size, unrotated, unflipped case (DICOMweb without a viewport, thumbnails
    aside) needs no resampling; checking it up front saves building the matrices."""
    return (
        viewport.canvas is None
        and viewport.zoom == 1.0
        and viewport.pan_x == 0.0
        and viewport.pan_y == 0.0
        and viewport.rotation % 360 == 0
        and not (viewport.flip_horizontal or viewport.flip_vertical)
        and aspect[0] == aspect[1]
    )


def _unit(aspect: tuple[float, float]) -> tuple[float, float]:
    """Row and column pixel sizes relative to the finer one, so no axis is shrunk."""
    finest = min(aspect)
    return aspect[0] / finest, aspect[1] / finest


def _display_size(
    rows: int, columns: int, aspect: tuple[float, float], rotation: int
) -> tuple[float, float]:
    unit_y, unit_x = _unit(aspect)
    width, height = columns * unit_x, rows * unit_y
    return (height, width) if rotation % 180 else (width, height)


def _matrix(
    rows: int,
    columns: int,
    aspect: tuple[float, float],
    viewport: Viewport,
    width: int,
    height: int,
) -> tuple[npt.NDArray[np.float64], float]:
    display_w, display_h = _display_size(rows, columns, aspect, viewport.rotation)
    scale = min(width / display_w, height / display_h) * viewport.zoom
    return _matrix_for(rows, columns, aspect, viewport, width, height, scale), scale


def _matrix_for(
    rows: int,
    columns: int,
    aspect: tuple[float, float],
    viewport: Viewport,
    width: int,
    height: int,
    scale: float,
) -> npt.NDArray[np.float64]:
    """Source pixel centre (x, y) → canvas pixel centre, composed right to left."""
    unit_y, unit_x = _unit(aspect)
    centre = _translate(-(columns - 1) / 2.0, -(rows - 1) / 2.0)
    stretch = np.diag([unit_x * scale, unit_y * scale, 1.0])
    flip = np.diag([-1.0 if viewport.flip_horizontal else 1.0, 1.0, 1.0])
    flip = flip @ np.diag([1.0, -1.0 if viewport.flip_vertical else 1.0, 1.0])
    quarter_turns = (viewport.rotation // 90) % 4
    cos, sin = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter_turns]
    rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    place = _translate(
        (width - 1) / 2.0 + viewport.pan_x * width, (height - 1) / 2.0 + viewport.pan_y * height
    )
    full: npt.NDArray[np.float64] = place @ rotate @ stretch @ flip @ centre
    return full[:2, :]


def _translate(dx: float, dy: float) -> npt.NDArray[np.float64]:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])

"""VOI LUT: real-world values to 8-bit display grey levels (PS3.3 C.11.2, C.11.6).

Windows follow C.11.2.1.2 exactly (LINEAR, LINEAR_EXACT, SIGMOID) with ymin 0 and ymax 255.
The common case (linear rescale + linear window) runs as one clipped OpenCV scale on the stored
values, which is several times faster than numpy arithmetic; every other combination goes
through a table over the stored range, so each stored value is computed once per render.
"""

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from server.render.errors import INVALID_WINDOW, RenderError
from server.render.lut import Lut
from server.render.modality_lut import ModalityLut

Y_MAX = 255.0
TABLE_LIMIT = 1 << 17


class VoiFunction(StrEnum):
    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """Window Center/Width in real-world units; invalid values cannot be constructed."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR
    explanation: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise RenderError(INVALID_WINDOW, "window center and width must be finite numbers")
        if self.function is VoiFunction.LINEAR and self.width < 1.0:
            raise RenderError(INVALID_WINDOW, "a LINEAR window needs a width of at least 1")
        if self.width <= 0.0:
            raise RenderError(INVALID_WINDOW, "window width must be greater than 0")


def parse_function(name: str | None) -> VoiFunction:
    if not name:
        return VoiFunction.LINEAR
    try:
        return VoiFunction(name.strip().upper())
    except ValueError as exc:
        raise RenderError(INVALID_WINDOW, f"unknown VOI LUT function {name!r}") from exc


def window_values(x: npt.NDArray[Any], window: Window) -> npt.NDArray[np.float64]:
    """The standard's formulas on real values; the reference the fast path is tested against."""
    values = np.asarray(x, dtype=np.float64)
    c, w = window.center, window.width
    if window.function is VoiFunction.SIGMOID:
        exponent = np.clip(-4.0 * (values - c) / w, -700.0, 700.0)
        return Y_MAX / (1.0 + np.exp(exponent))
    if window.function is VoiFunction.LINEAR_EXACT:
        low, high = c - w / 2.0, c + w / 2.0
        ramp = ((values - c) / w + 0.5) * Y_MAX
    else:
        low, high = c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0
        ramp = ((values - (c - 0.5)) / max(w - 1.0, 1e-12) + 0.5) * Y_MAX
    return np.where(values <= low, 0.0, np.where(values > high, Y_MAX, ramp))


def voi_lut_values(x: npt.NDArray[Any], lut: Lut) -> npt.NDArray[np.float64]:
    """A VOI LUT's output scaled from its declared bit depth to 0..255."""
    return lut.apply(x).astype(np.float64) * (Y_MAX / lut.max_output)


Voi = Window | Lut


def render_grey(
    stored: npt.NDArray[Any],
    modality: ModalityLut,
    voi: Voi,
    *,
    invert: bool,
    stored_range: tuple[int, int] | None,
) -> npt.NDArray[np.uint8]:
    """Stored values to display grey levels through the modality LUT, the VOI and inversion.

    `stored_range` is the range Bits Stored and Pixel Representation allow; it bounds the
    lookup table. Float pixel data (no range) is computed directly.
    """
    if (
        isinstance(voi, Window)
        and voi.function is not VoiFunction.SIGMOID
        and modality.is_linear
        and not (voi.function is VoiFunction.LINEAR and voi.width == 1.0)
        and stored.dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32)
    ):
        grey = _linear_fast(stored, modality, voi)
    elif stored_range is not None and stored_range[1] - stored_range[0] < TABLE_LIMIT:
        low, high = stored_range
        domain = np.arange(low, high + 1, dtype=np.float64)
        table = _grey(modality.apply(domain), voi)
        index = np.clip(stored, low, high).astype(np.int32, copy=False) - low
        grey = np.take(table, index)
    else:
        grey = _grey(modality.apply(stored), voi)
    return np.asarray(cv2.bitwise_not(grey), dtype=np.uint8) if invert else grey


def _grey(values: npt.NDArray[np.float64], voi: Voi) -> npt.NDArray[np.uint8]:
    out = window_values(values, voi) if isinstance(voi, Window) else voi_lut_values(values, voi)
    return np.rint(out).astype(np.uint8)


def _linear_fast(
    stored: npt.NDArray[Any], modality: ModalityLut, window: Window
) -> npt.NDArray[np.uint8]:
    """Clip stored values to the ramp, then one saturating scale (abs is harmless after clip)."""
    c, w = window.center, window.width
    if window.function is VoiFunction.LINEAR_EXACT:
        scale, offset = Y_MAX / w, (0.5 - c / w) * Y_MAX
    else:
        scale = Y_MAX / (w - 1.0)
        offset = (0.5 - (c - 0.5) / (w - 1.0)) * Y_MAX
    alpha = scale * modality.slope
    beta = scale * modality.intercept + offset
    info = np.iinfo(stored.dtype)
    zero_at = -beta / alpha
    full_at = (Y_MAX - beta) / alpha
    low = int(max(info.min, min(math.floor(min(zero_at, full_at)), info.max)))
    high = int(min(info.max, max(math.ceil(max(zero_at, full_at)), info.min)))
    clipped = np.clip(stored, low, high)
    grey = np.asarray(cv2.convertScaleAbs(clipped, alpha=alpha, beta=beta), dtype=np.uint8)
    for end in (low, high):
        if alpha * end + beta <= -0.5:
            grey[clipped == end] = 0
    return grey

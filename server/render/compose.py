"""The pipeline composed: decoded frame → VOI → viewport (or tile) → display pixels.

Kept separate from the service so the exact pixels a client receives can be computed in a test
without threads or caches.
"""

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from server.render.decode import DecodedFrame
from server.render.header import ImageInfo
from server.render.presets import preset_voi
from server.render.tiles import TileBox, shrink_tile
from server.render.viewport import Viewport, apply_viewport, source_region
from server.render.voi_lut import Voi, VoiFunction, Window, render_grey


def choose_voi(
    info: ImageInfo,
    pixels: npt.NDArray[Any],
    *,
    window: Window | None = None,
    preset: str | None = None,
) -> Voi:
    """An explicit window, else a named preset (which may be one of the object's VOI LUTs),
    else the object's first window, its first VOI LUT, or finally the frame's value range."""
    if window is not None:
        return window
    if preset is not None:
        return preset_voi(info, preset)
    if info.windows:
        return info.windows[0]
    if info.voi_luts:
        return info.voi_luts[0]
    return auto_window(info, pixels)


def auto_window(info: ImageInfo, pixels: npt.NDArray[Any]) -> Window:
    """Full range of this frame's real-world values, for objects that carry no window."""
    values = info.modality_lut.apply(np.asarray([np.min(pixels), np.max(pixels)]))
    low, high = float(values.min()), float(values.max())
    return Window(
        center=(low + high) / 2.0,
        width=max(high - low, 1.0),
        function=VoiFunction.LINEAR_EXACT,
        explanation="auto",
    )


def display_pixels(
    decoded: DecodedFrame,
    voi: Voi | None,
    *,
    invert: bool = False,
    region: tuple[slice, slice] | None = None,
) -> npt.NDArray[np.uint8]:
    """Display grey levels (or RGB) for the frame or a region of it.

    `invert` is the viewer's choice; MONOCHROME1 and Presentation LUT Shape INVERSE are
    already folded in, so a MONOCHROME1 image inverted by the viewer shows as MONOCHROME2.
    """
    info = decoded.info
    pixels = decoded.pixels if region is None else decoded.pixels[region]
    if info.is_color:
        rgb: npt.NDArray[np.uint8] = pixels
        return (255 - rgb).astype(np.uint8) if invert else rgb
    chosen = voi if voi is not None else choose_voi(info, decoded.pixels)
    return render_grey(
        pixels,
        info.modality_lut,
        chosen,
        invert=info.inverse != invert,
        stored_range=info.stored_range,
    )


def render_image(
    decoded: DecodedFrame, voi: Voi | None, viewport: Viewport
) -> npt.NDArray[np.uint8]:
    """A source region is cut before the LUT (less work) and its mirroring joins the flips."""
    region = None
    if viewport.region is not None:
        cut = source_region(decoded.info.rows, decoded.info.columns, viewport.region)
        region = (cut.rows, cut.columns)
        viewport = replace(
            viewport,
            region=None,
            flip_horizontal=viewport.flip_horizontal != cut.flip_horizontal,
            flip_vertical=viewport.flip_vertical != cut.flip_vertical,
        )
    grey = display_pixels(decoded, voi, invert=viewport.invert, region=region)
    return apply_viewport(grey, decoded.info.aspect, viewport)


def render_tile(
    decoded: DecodedFrame, voi: Voi | None, box: TileBox, *, invert: bool = False
) -> npt.NDArray[np.uint8]:
    region = (slice(box.row0, box.row1), slice(box.col0, box.col1))
    chosen = voi
    if chosen is None and not decoded.info.is_color:
        chosen = choose_voi(decoded.info, decoded.pixels)
    return shrink_tile(display_pixels(decoded, chosen, invert=invert, region=region), box)

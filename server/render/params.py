"""Query parameters to render requests: Noctis' own `/api/render` form and PS3.18's.

Parsing is strict (a malformed number is a 400 naming the parameter, never a default), because a
silently ignored window would show the reader a different image than asked for.
"""

import math
from collections.abc import Mapping
from typing import Any

from server.render.encode import Encoding, ImageFormat
from server.render.errors import (
    FRAME_OUT_OF_RANGE,
    INVALID_CANVAS,
    INVALID_QUALITY,
    INVALID_VIEWPORT,
    INVALID_WINDOW,
    NOT_ACCEPTABLE,
    TOO_LARGE,
    RenderError,
)
from server.render.models import Quality, RenderRequest
from server.render.viewport import Viewport
from server.render.voi_lut import VoiFunction, Window

DICOMWEB_FUNCTIONS = {
    "linear": VoiFunction.LINEAR,
    "linear-exact": VoiFunction.LINEAR_EXACT,
    "sigmoid": VoiFunction.SIGMOID,
}


def parse_window(raw: str | None) -> Window | None:
    """`center,width[,function]`; function as in PS3.18 (linear, linear-exact, sigmoid)."""
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    if len(parts) not in (2, 3):
        raise RenderError(INVALID_WINDOW, "window must be center,width[,function]")
    center = _number(parts[0], "window center", INVALID_WINDOW)
    width = _number(parts[1], "window width", INVALID_WINDOW)
    function = VoiFunction.LINEAR
    if len(parts) == 3:
        name = parts[2].strip().lower()
        if name not in DICOMWEB_FUNCTIONS:
            raise RenderError(INVALID_WINDOW, f"unknown window function {parts[2]!r}")
        function = DICOMWEB_FUNCTIONS[name]
    return Window(center, width, function)


def parse_frame(raw: str) -> int:
    """A 1-based frame number from a URL to the 0-based index the pipeline uses."""
    try:
        number = int(raw)
    except ValueError:
        raise RenderError(FRAME_OUT_OF_RANGE, f"frame {raw!r} is not a number") from None
    if number < 1:
        raise RenderError(FRAME_OUT_OF_RANGE, "frame numbers start at 1")
    return number - 1


def parse_viewport(query: Mapping[str, str]) -> Viewport:
    """Noctis form: canvas=WxH, zoom, pan=x,y, rotate, flip=h|v|hv, invert=true|false."""
    canvas = None
    if query.get("canvas"):
        canvas = _size(query["canvas"])
    pan_x = pan_y = 0.0
    if query.get("pan"):
        parts = query["pan"].split(",")
        if len(parts) != 2:
            raise RenderError(INVALID_VIEWPORT, "pan must be x,y")
        pan_x = _number(parts[0], "pan x", INVALID_VIEWPORT)
        pan_y = _number(parts[1], "pan y", INVALID_VIEWPORT)
    flip = query.get("flip", "")
    if flip not in ("", "h", "v", "hv", "vh"):
        raise RenderError(INVALID_VIEWPORT, "flip must be h, v or hv")
    zoom = _number(query["zoom"], "zoom", INVALID_VIEWPORT) if query.get("zoom") else 1.0
    rotation = 0
    if query.get("rotate"):
        try:
            rotation = int(query["rotate"])
        except ValueError:
            raise RenderError(INVALID_VIEWPORT, "rotate must be a multiple of 90") from None
    return Viewport(
        canvas=canvas,
        zoom=zoom,
        pan_x=pan_x,
        pan_y=pan_y,
        rotation=rotation,
        flip_horizontal="h" in flip,
        flip_vertical="v" in flip,
        invert=_flag(query.get("invert")),
    )


def parse_dicomweb_viewport(raw: str | None, default: Viewport) -> Viewport:
    """PS3.18 `viewport=vw,vh[,sx,sy,sw,sh]`: the output size, and optionally the source
    rectangle shown in it (empty sx/sy mean 0, empty sw/sh reach the image's edge)."""
    if raw is None or raw == "":
        return default
    parts = raw.split(",")
    if len(parts) not in (2, 6):
        raise RenderError(INVALID_VIEWPORT, "viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    canvas = _size(",".join(parts[:2]))
    if len(parts) == 2:
        return Viewport(canvas=canvas)
    sx, sy, sw, sh = (
        _region_value(part, name) for part, name in zip(parts[2:], "xywh", strict=True)
    )
    return Viewport(canvas=canvas, region=(sx or 0, sy or 0, sw, sh))


def _region_value(raw: str, name: str) -> int | None:
    if raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise RenderError(INVALID_VIEWPORT, f"viewport s{name} must be an integer") from None


def parse_format(raw: str | None) -> ImageFormat | None:
    """Noctis' `format=jpeg|png|webp`; absent means the quality level decides."""
    if raw is None or raw == "":
        return None
    try:
        return ImageFormat(raw.lower())
    except ValueError:
        raise RenderError(INVALID_QUALITY, "format must be jpeg, png or webp") from None


def parse_quality(raw: str | None) -> Quality:
    if raw is None or raw == "":
        return Quality.FINAL
    try:
        return Quality(raw)
    except ValueError:
        raise RenderError(
            INVALID_QUALITY, "quality must be interactive, final or lossless"
        ) from None


def parse_jpeg_quality(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise RenderError(INVALID_QUALITY, "quality must be an integer 1..100") from None
    return Encoding(quality=value).quality


def _size(raw: str) -> tuple[int, int]:
    parts = raw.replace("x", ",").split(",")
    if len(parts) != 2:
        raise RenderError(INVALID_CANVAS, "canvas must be WIDTHxHEIGHT")
    try:
        width, height = int(parts[0]), int(parts[1])
    except ValueError:
        raise RenderError(INVALID_CANVAS, "canvas sides must be integers") from None
    Viewport(canvas=(width, height))
    return width, height


def _number(raw: str, name: str, code: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise RenderError(code, f"{name} must be a number") from None
    if not math.isfinite(value):
        raise RenderError(code, f"{name} must be finite")
    return value


def _flag(raw: str | None) -> bool:
    if raw is None or raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise RenderError(INVALID_VIEWPORT, "flags must be true or false")


def render_request_from(payload: Mapping[str, Any]) -> RenderRequest:
    """A viewport payload as the rooms receive it over Socket.IO (already schema-checked there)
    to the same `RenderRequest` the HTTP routes build, so both edges render identical keys:

        {"sop_instance_uid": str, "frame": 1-based int, "window": {"center", "width",
         "function"?} | null, "preset": str | null, "quality": "interactive" | "final" |
         "lossless", "viewport": {"canvas": [w, h], "zoom", "pan": [x, y], "rotation",
         "flip_horizontal", "flip_vertical", "invert"}}
    """
    try:
        uid = str(payload["sop_instance_uid"])
        frame = int(payload.get("frame", 1))
    except (KeyError, TypeError, ValueError):
        raise RenderError(
            FRAME_OUT_OF_RANGE, "sop_instance_uid and a frame number are needed"
        ) from None
    if frame < 1:
        raise RenderError(FRAME_OUT_OF_RANGE, "frame numbers start at 1")
    window = None
    raw_window = payload.get("window")
    if raw_window is not None:
        try:
            center, width = float(raw_window["center"]), float(raw_window["width"])
        except (KeyError, TypeError, ValueError):
            raise RenderError(INVALID_WINDOW, "window needs numeric center and width") from None
        function = DICOMWEB_FUNCTIONS.get(str(raw_window.get("function", "linear")).lower())
        if function is None:
            raise RenderError(
                INVALID_WINDOW, "window function must be linear, linear-exact or sigmoid"
            )
        window = Window(center, width, function)
    preset = payload.get("preset")
    return RenderRequest(
        sop_instance_uid=uid,
        frame=frame - 1,
        window=window,
        preset=str(preset) if preset else None,
        viewport=_viewport_from(payload.get("viewport") or {}),
        quality=parse_quality(payload.get("quality")),
    )


def _viewport_from(raw: Mapping[str, Any]) -> Viewport:
    try:
        canvas = raw.get("canvas")
        pan = raw.get("pan") or (0.0, 0.0)
        return Viewport(
            canvas=None if canvas is None else (int(canvas[0]), int(canvas[1])),
            zoom=float(raw.get("zoom", 1.0)),
            pan_x=float(pan[0]),
            pan_y=float(pan[1]),
            rotation=int(raw.get("rotation", 0)),
            flip_horizontal=bool(raw.get("flip_horizontal", False)),
            flip_vertical=bool(raw.get("flip_vertical", False)),
            invert=bool(raw.get("invert", False)),
        )
    except (IndexError, TypeError, ValueError):
        raise RenderError(INVALID_VIEWPORT, "viewport values must be numbers") from None


RENDERED_TYPES = {f.media_type: f for f in ImageFormat}


def negotiate_rendered(accept: str, *, several: bool) -> tuple[ImageFormat, bool]:
    """PS3.18 content negotiation for rendered resources: the image format and whether the
    answer is `multipart/related` (one part per frame). Several frames need multipart (an
    image media type holds one); JPEG is the default. Media ranges are tried by descending q,
    then in the order given; q=0 excludes."""
    ranges = []
    for position, entry in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in entry.split(";"))
        if not media:
            continue
        options = dict(_param(p) for p in params if "=" in p)
        try:
            weight = float(options.get("q", "1"))
        except ValueError:
            weight = 1.0
        if weight > 0:
            ranges.append((-weight, position, media.lower(), options))
    if not accept.strip():
        return ImageFormat.JPEG, several
    for _, _, media, options in sorted(ranges, key=lambda r: (r[0], r[1])):
        if media == "multipart/related":
            kind = options.get("type", "image/jpeg").lower()
            if kind in RENDERED_TYPES:
                return RENDERED_TYPES[kind], True
        elif media in RENDERED_TYPES and not several:
            return RENDERED_TYPES[media], False
        elif media in ("image/*", "*/*"):
            return ImageFormat.JPEG, several
    produced = ", ".join(RENDERED_TYPES)
    if several:
        raise RenderError(
            NOT_ACCEPTABLE,
            f"several frames are answered as multipart/related with type {produced}",
        )
    raise RenderError(NOT_ACCEPTABLE, f"rendered resources are available as {produced}")


def _param(raw: str) -> tuple[str, str]:
    name, _, value = raw.partition("=")
    return name.strip().lower(), value.strip().strip('"')


def parse_frame_list(raw: str, limit: int) -> list[int]:
    """PS3.18 `{frames}`: comma-separated 1-based numbers, to 0-based indices."""
    parts = raw.split(",")
    if len(parts) > limit:
        raise RenderError(TOO_LARGE, f"at most {limit} frames per request")
    return [parse_frame(part.strip()) for part in parts]

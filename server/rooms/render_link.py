"""The rooms' ``Renderer`` and ``Measurer`` over the render service (``server.render``).

Frames and values come from the same decoded pixels the HTTP render routes use. A room may only
render or measure instances of its own study: the archive's instance index says which study an
instance belongs to, so a reader cannot reach another study (or facility) by guessing a UID.
"""

from __future__ import annotations

import asyncio
from typing import Any

from server.http.errors import ApiError
from server.render import measure
from server.render.errors import RenderError
from server.render.models import Quality, RenderRequest
from server.render.service import RenderService
from server.render.viewport import Viewport
from server.render.voi_lut import Window
from server.rooms.frames import Frame, FrameRequest
from server.rooms.measure import Shape
from server.store.database import Store

INSTANCES = "dicom_instances"


class StudyInstances:
    """Answers "is this instance part of that study?" from the archive's instance index."""

    def __init__(self, store: Store) -> None:
        self._instances = store[INSTANCES]

    async def check(self, study_uid: str, instance_uid: str) -> None:
        found = await self._instances.find_one(
            {"_id": instance_uid, "study_uid": study_uid}, {"_id": 1}
        )
        if found is None:
            raise ApiError("not_found", "No such image in this study.")


class ServiceRenderer:
    def __init__(self, service: RenderService, instances: StudyInstances) -> None:
        self._service = service
        self._instances = instances

    async def render(self, request: FrameRequest) -> Frame:
        await self._instances.check(request.study_uid, request.instance_uid)
        try:
            window = None
            if request.window_center is not None and request.window_width is not None:
                window = Window(request.window_center, request.window_width)
            viewport = Viewport(
                canvas=request.canvas,
                zoom=request.zoom,
                pan_x=request.pan[0],
                pan_y=request.pan[1],
                rotation=request.rotation,
                flip_horizontal=request.flip_h,
                flip_vertical=request.flip_v,
                invert=request.invert,
            )
            rendered = await self._service.render(
                RenderRequest(
                    request.instance_uid,
                    request.frame,
                    window=window,
                    viewport=viewport,
                    quality=Quality(request.quality),
                )
            )
        except RenderError as exc:
            raise ApiError(exc.code, exc.message) from None
        except ValueError as exc:
            raise ApiError("validation_failed", str(exc)) from None
        return Frame(rendered.data, rendered.media_type, rendered.width, rendered.height)


class ServiceMeasurer:
    """Lengths and angles in mm/degrees from Pixel Spacing; ROI statistics and the probed
    pixel's value in modality units.

    Ellipses are drawn as [centre, corner of the bounding box]; rectangles as two corners.
    """

    def __init__(self, service: RenderService, instances: StudyInstances) -> None:
        self._service = service
        self._instances = instances

    async def measure(self, shape: Shape) -> dict[str, Any]:
        try:
            await self._instances.check(shape.study_uid, shape.instance_uid)
            decoded = await self._service.frame(shape.instance_uid, shape.frame)
            values = await asyncio.to_thread(_values, decoded, shape)
        except (ApiError, RenderError) as exc:
            return {"status": "not_measured", "reason": exc.message}
        return {"status": "measured", "values": values}


def _values(decoded: Any, shape: Shape) -> dict[str, Any]:
    cal = measure.calibration(decoded.info)
    p = shape.points
    if shape.kind == "length":
        length = measure.length(p[0], p[1], cal)
        return {"length": length.value, "unit": length.unit, "caveat": length.caveat}
    if shape.kind == "angle":
        return {"angle": measure.angle(p[0], p[1], p[2], cal), "unit": "deg"}
    if shape.kind == "cobb":
        return {"angle": measure.cobb_angle((p[0], p[1]), (p[2], p[3]), cal), "unit": "deg"}
    if shape.kind == "probe":
        return _probe(decoded, p[0])
    roi: measure.Roi
    if shape.kind == "ellipse":
        (cx, cy), (x, y) = p
        roi = measure.Ellipse((cx, cy), abs(x - cx), abs(y - cy))
    elif shape.kind == "rectangle":
        roi = measure.Rectangle(p[0], p[1])
    else:
        roi = measure.Polygon(tuple(p))
    stats = measure.roi_stats(decoded, roi)
    return {
        "mean": stats.mean,
        "std": stats.std,
        "min": stats.min,
        "max": stats.max,
        "pixels": stats.pixels,
        "area": stats.area,
        "area_unit": stats.area_unit,
        "value_unit": stats.value_unit,
        "caveat": stats.caveat,
    }


def _probe(decoded: Any, point: measure.Point) -> dict[str, Any]:
    probed = measure.probe(decoded, point)
    value: float | list[float] = probed.value[0] if len(probed.value) == 1 else list(probed.value)
    position = probed.patient_position
    return {
        "value": value,
        "value_unit": probed.value_unit,
        "pixel": [round(point[0]), round(point[1])],
        "patient_position": list(position) if position is not None else None,
    }

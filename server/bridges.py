"""Adapters the composition root uses where one capability answers another's question, and the
relay of the workflow's live events to browsers.

The rooms declare what they need as small protocols (``StudyDirectory``, ``Measurer``) and know
nothing of the workflow or the render engine; these adapters answer with them. Each looks its
service up on the app at call time, because the services are built by cleanup contexts that run
after ``build_app`` has returned.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.appkeys import HUB, STORE
from server.http.render_routes import RENDER_SERVICE
from server.hub import DomainEvent
from server.render.errors import RenderError
from server.render.measure import (
    Calibration,
    Ellipse,
    Polygon,
    Rectangle,
    Roi,
    angle,
    calibration,
    cobb_angle,
    length,
)
from server.rooms.access import StoreStudyDirectory
from server.rooms.measure import Shape
from server.rooms.oplog import worklist_room
from server.rooms.socket_server import SOCKETIO, user_room
from server.workflow.service import WORKFLOW


class WorklistStudyDirectory:
    """Which facility owns a study: the worklist knows ordered and arrived studies; the rooms'
    own study index answers for any it does not list."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def study_facility(self, study_uid: str) -> str | None:
        facility = await self._app[WORKFLOW].studies.study_facility(study_uid)
        if facility is not None:
            return facility
        return await StoreStudyDirectory(self._app[STORE]).study_facility(study_uid)


def _roi(shape: Shape) -> Roi:
    points = shape.points
    if shape.kind == "polygon":
        return Polygon(tuple(points))
    (x0, y0), (x1, y1) = points[0], points[1]
    if shape.kind == "rectangle":
        return Rectangle((x0, y0), (x1, y1))
    return Ellipse(((x0 + x1) / 2, (y0 + y1) / 2), abs(x1 - x0) / 2, abs(y1 - y0) / 2)


# Points each measured kind needs: ellipse and rectangle by two corners of their bounding box.
_POINTS = {"length": 2, "angle": 3, "cobb": 4, "ellipse": 2, "rectangle": 2, "polygon": 3}


def _suffix(cal: Calibration) -> str:
    return "mm" if cal.unit == "mm" else "px"


class RenderMeasurer:
    """Measures annotations on the stored pixels with the render engine's calibrated maths."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def measure(self, shape: Shape) -> dict[str, Any]:
        needed = _POINTS.get(shape.kind)
        if needed is None:
            return {"status": "not_measured", "reason": f"{shape.kind} is not measurable"}
        if len(shape.points) < needed:
            return {"status": "not_measured", "reason": f"{shape.kind} needs {needed} points"}
        service = self._app[RENDER_SERVICE]
        try:
            info = await service.info(shape.instance_uid)
            cal = calibration(info)
            values = await self._values(shape, cal)
        except (RenderError, ValueError) as exc:
            return {"status": "not_measured", "reason": str(exc)[:300]}
        if cal.caveat:
            values["caveat"] = cal.caveat
        return {"status": "measured", "values": values}

    async def _values(self, shape: Shape, cal: Calibration) -> dict[str, Any]:
        p = shape.points
        unit = _suffix(cal)
        if shape.kind == "length":
            return {f"length_{unit}": round(length(p[0], p[1], cal).value, 3)}
        if shape.kind == "angle":
            return {"angle_deg": round(angle(p[0], p[1], p[2], cal), 2)}
        if shape.kind == "cobb":
            return {"cobb_deg": round(cobb_angle((p[0], p[1]), (p[2], p[3]), cal), 2)}
        stats = await self._app[RENDER_SERVICE].roi_stats(
            shape.instance_uid, shape.frame, _roi(shape)
        )
        return {
            f"area_{unit}2": round(stats.area, 3),
            "mean": round(stats.mean, 2),
            "std": round(stats.std, 2),
            "min": stats.min,
            "max": stats.max,
            "pixels": stats.pixels,
            "unit": stats.value_unit,
        }


# Workflow topics the browser shows live, and where each goes (workflow/events.py says which).
_TO_WORKLIST = ("worklist.changed", "study.status_changed", "report.signed")


def forward_workflow_events(app: web.Application) -> None:
    """Relays the workflow's hub events to Socket.IO: worklist changes to the facility's worklist
    room (joined with ``worklist.join``), notifications to their user's private room."""
    sio = app[SOCKETIO]

    async def to_worklist(event: DomainEvent) -> None:
        if event.facility is not None:
            await sio.emit(event.topic, dict(event.data), room=worklist_room(event.facility))

    async def to_user(event: DomainEvent) -> None:
        user_id = event.data.get("user_id")
        if isinstance(user_id, str) and user_id:
            await sio.emit(event.topic, dict(event.data), room=user_room(user_id))

    for topic in _TO_WORKLIST:
        app[HUB].subscribe(topic, to_worklist)
    app[HUB].subscribe("notification.created", to_user)

"""The seam between annotations and the render engine's measurement functions.

Values are measured on the server in real units, which needs the image (pixel spacing, modality
LUT). The measurer behind this protocol is wired by the composition root; until one is wired,
``Unmeasured`` stores every geometric annotation as ``not_measured`` with the reason, because a
value guessed in pixels would be read as millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MEASURED_KINDS = frozenset({"length", "angle", "cobb", "ellipse", "rectangle", "polygon", "probe"})


@dataclass(frozen=True)
class Shape:
    study_uid: str
    kind: str
    instance_uid: str
    frame: int
    points: tuple[tuple[float, float], ...]


class Measurer(Protocol):
    async def measure(self, shape: Shape) -> dict[str, Any]:
        """``{"status": "measured", "values": {...}}`` or ``{"status": "not_measured", ...}``."""


class Unmeasured:
    async def measure(self, shape: Shape) -> dict[str, Any]:
        return {
            "status": "not_measured",
            "reason": "no measurement service is connected to the rooms on this server",
        }


async def measurement_for(measurer: Measurer, shape: Shape) -> dict[str, Any]:
    if shape.kind not in MEASURED_KINDS:
        return {"status": "none"}
    return await measurer.measure(shape)

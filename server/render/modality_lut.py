"""Modality LUT: stored values to real-world units (PS3.3 C.11.1), e.g. Hounsfield units for CT.

Measurements and windows are expressed in these units, so this transform is shared by the VOI
stage, ROI statistics, the point probe and MPR.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.render.errors import UNDECODABLE, RenderError
from server.render.lut import Lut, parse_lut


@dataclass(frozen=True)
class ModalityLut:
    """Either a linear rescale (`lut` is None) or a Modality LUT Sequence table."""

    slope: float = 1.0
    intercept: float = 0.0
    lut: Lut | None = None
    units: str = ""

    @property
    def is_linear(self) -> bool:
        return self.lut is None

    @property
    def is_identity(self) -> bool:
        return self.lut is None and self.slope == 1.0 and self.intercept == 0.0

    def apply(self, stored: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Real-world values for stored values (float64 so HU sums and stds do not drift)."""
        if self.lut is not None:
            return self.lut.apply(stored).astype(np.float64)
        return stored.astype(np.float64) * self.slope + self.intercept

    def value(self, stored: float) -> float:
        return float(self.apply(np.asarray([stored]))[0])


def modality_lut_from(source: Any, *, signed: bool, little_endian: bool = True) -> ModalityLut:
    """Read the Modality LUT Module (or a Pixel Value Transformation functional group item)."""
    units = str(source.get("RescaleType", "") or "")
    if source.get("ModalityLUTSequence"):
        item = source.ModalityLUTSequence[0]
        lut = parse_lut(item, signed=signed, little_endian=little_endian)
        lut_units = str(item.get("ModalityLUTType", "") or units)
        return ModalityLut(lut=lut, units=lut_units)
    slope_value = source.get("RescaleSlope")
    intercept_value = source.get("RescaleIntercept")
    try:
        slope = 1.0 if slope_value is None else float(slope_value)
        intercept = 0.0 if intercept_value is None else float(intercept_value)
    except (TypeError, ValueError) as exc:
        raise RenderError(UNDECODABLE, f"unreadable Rescale Slope/Intercept: {exc}") from exc
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0.0:
        raise RenderError(UNDECODABLE, "Rescale Slope must be finite and non-zero")
    return ModalityLut(slope=slope, intercept=intercept, units=units)

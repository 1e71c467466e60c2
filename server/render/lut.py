"""Lookup tables as stored in Modality and VOI LUT Sequence items (PS3.3 C.11.1, C.11.2).

Both sequences share the LUT Descriptor / LUT Data encoding, including its traps: 0 entries
means 65536, the first mapped value's sign follows Pixel Representation, and LUT Data may be
US or OW in either byte order. Parsing it once here keeps those traps in one place.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.render.errors import UNDECODABLE, RenderError


@dataclass(frozen=True, eq=False)
class Lut:
    """A parsed LUT: input values below `first_mapped` use entry 0, above the end the last."""

    first_mapped: int
    bits: int
    table: npt.NDArray[np.uint16]
    explanation: str = ""

    def apply(self, values: npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
        """Look up `values` (rounded to the nearest integer) with the standard's clamping."""
        index = np.rint(values).astype(np.int64) - self.first_mapped
        np.clip(index, 0, self.table.size - 1, out=index)
        looked_up: npt.NDArray[np.uint16] = self.table[index]
        return looked_up

    @property
    def max_output(self) -> int:
        return (1 << self.bits) - 1


def parse_lut(item: Any, *, signed: bool, little_endian: bool = True) -> Lut:
    """Read one LUT item; malformed descriptors are `undecodable`, not a crash.

    `signed` is Pixel Representation: the descriptor's first mapped value may arrive as an
    unsigned 16-bit number even when it is meant to be negative.
    """
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        entries, first, bits = descriptor
        entries = entries or 65536
        if signed and first >= 32768:
            first -= 65536
        element = item["LUTData"]
        raw = element.value
        if isinstance(raw, bytes | bytearray):
            dtype = "<u2" if little_endian else ">u2"
            data = np.frombuffer(bytes(raw), dtype=dtype, count=entries)
        else:
            values = [raw] if isinstance(raw, int) else list(raw)
            data = np.asarray(values[:entries], dtype=np.int64)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RenderError(UNDECODABLE, f"malformed LUT: {exc}") from exc
    if data.size != entries or not 1 <= bits <= 16:
        raise RenderError(UNDECODABLE, "LUT Data does not match its LUT Descriptor")
    table = np.clip(data, 0, 65535).astype(np.uint16)
    table.setflags(write=False)
    explanation = str(item.get("LUTExplanation", "") or "")
    return Lut(first_mapped=first, bits=bits, table=table, explanation=explanation)

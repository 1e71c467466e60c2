"""The one error type of the render layer and its stable codes.

Every entry point (HTTP route, Socket.IO event) maps a `RenderError` to the protocol's error
shape using `code`, so codes are part of the wire contract and must not be renamed.
"""

from typing import Final

FRAME_OUT_OF_RANGE: Final = "frame_out_of_range"
INVALID_WINDOW: Final = "invalid_window"
INVALID_CANVAS: Final = "invalid_canvas"
INVALID_VIEWPORT: Final = "invalid_viewport"
INVALID_TILE: Final = "invalid_tile"
INVALID_QUALITY: Final = "invalid_quality"
INVALID_MEASUREMENT: Final = "invalid_measurement"
UNDECODABLE: Final = "undecodable"
UNSUPPORTED: Final = "unsupported"
TOO_LARGE: Final = "too_large"
NOT_A_VOLUME: Final = "not_a_volume"
NOT_FOUND: Final = "not_found"
NOT_ACCEPTABLE: Final = "not_acceptable"
SUPERSEDED: Final = "superseded"


class RenderError(Exception):
    """Bad input or undecodable data; never a server fault, so it maps to a 4xx or error ack."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"RenderError({self.code!r}, {self.message!r})"

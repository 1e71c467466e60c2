"""What callers ask the render service for and what they get back.

Requests are frozen and hashable: a request *is* its render key, so two viewers asking for the
same pixels share one render and one cache entry.
"""

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from server.render.encode import ImageFormat
from server.render.errors import SUPERSEDED
from server.render.mpr import Plane, SlabMode
from server.render.viewport import Viewport
from server.render.voi_lut import Window

RENDER_VERSION = "1"


class InstanceLoader(Protocol):
    """The DICOM archive as the render service sees it (implemented structurally)."""

    async def instance_bytes(self, sop_instance_uid: str) -> bytes:
        """The stored Part 10 file; raises KeyError if the instance is unknown."""
        ...

    async def series_instance_uids(self, series_instance_uid: str) -> list[str]:
        """The series' instances in display order; raises KeyError if the series is unknown."""
        ...


class Quality(StrEnum):
    """INTERACTIVE while a viewer moves (cheap JPEG, downscaled); FINAL when it rests;
    LOSSLESS (PNG) on request."""

    INTERACTIVE = "interactive"
    FINAL = "final"
    LOSSLESS = "lossless"


@dataclass(frozen=True)
class RenderRequest:
    """One frame (0-based) of one instance, windowed and placed on the viewer's canvas.

    `window` wins over `preset`; with neither, the object's own first window is used.
    `jpeg_quality` overrides the quality level's JPEG (or lossy WebP) setting (DICOMweb's
    `quality`). `image_format` None means JPEG, or PNG for LOSSLESS; WebP is lossless under
    LOSSLESS and lossy otherwise.
    """

    sop_instance_uid: str
    frame: int = 0
    window: Window | None = None
    preset: str | None = None
    viewport: Viewport = field(default_factory=Viewport)
    quality: Quality = Quality.FINAL
    jpeg_quality: int | None = None
    image_format: ImageFormat | None = None


@dataclass(frozen=True)
class TileRequest:
    sop_instance_uid: str
    frame: int
    level: int
    x: int
    y: int
    window: Window | None = None
    preset: str | None = None
    invert: bool = False
    quality: Quality = Quality.FINAL


@dataclass(frozen=True)
class MprRequest:
    """A reformatted plane of a series; `index` counts planes along the plane's normal.

    An OBLIQUE plane is given instead by `orientation` (row and column direction cosines)
    and `offset_mm` from the volume's centre along its normal; `index` is unused."""

    series_instance_uid: str
    plane: Plane
    index: int
    window: Window | None = None
    slab_mm: float = 0.0
    slab_mode: SlabMode = SlabMode.AVERAGE
    viewport: Viewport = field(default_factory=Viewport)
    quality: Quality = Quality.FINAL
    orientation: tuple[float, ...] | None = None
    offset_mm: float = 0.0


AnyRequest = RenderRequest | TileRequest | MprRequest


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """Encoded pixels plus what a client needs to show and cache them."""

    data: bytes
    media_type: str
    width: int
    height: int
    etag: str
    window: Window | None
    quality: Quality


@dataclass(frozen=True)
class Superseded:
    """The answer to a viewer request that a newer request from the same viewer replaced."""

    request: RenderRequest
    code: str = SUPERSEDED


def etag_for(request: AnyRequest) -> str:
    """Strong validator: a SOP Instance UID names immutable content, so the request (plus the
    pipeline version) determines the bytes."""
    digest = hashlib.blake2b(f"{RENDER_VERSION}|{request!r}".encode(), digest_size=16)
    return f'"{digest.hexdigest()}"'

"""Display images to JPEG, PNG or WebP bytes.

OpenCV's bundled libjpeg-turbo was measured against simplejpeg on a 512² CT slice at q85
(0.56 ms vs 0.62 ms, same size within 0.2 %), so OpenCV is used and no extra dependency is
carried. PNG uses fast deflate (level 1): lossless on request costs ~4 ms, not ~7. WebP, on
request, is OpenCV's libwebp: lossy at the asked quality, or lossless.
"""

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from server.render.errors import INVALID_QUALITY, RenderError


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"

    @property
    def media_type(self) -> str:
        return f"image/{self.value}"


@dataclass(frozen=True)
class Encoding:
    """`quality` applies to JPEG and lossy WebP; `lossless` to WebP (PNG always is)."""

    format: ImageFormat = ImageFormat.JPEG
    quality: int = 85
    lossless: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise RenderError(INVALID_QUALITY, "image quality must be within 1..100")


WEBP_LOSSLESS = 101


def encode(image: npt.NDArray[np.uint8], encoding: Encoding) -> bytes:
    """Encode greyscale (HxW) or RGB (HxWx3) pixels."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if encoding.format is ImageFormat.JPEG:
        params = [cv2.IMWRITE_JPEG_QUALITY, encoding.quality]
        ok, buffer = cv2.imencode(".jpg", pixels, params)
    elif encoding.format is ImageFormat.WEBP:
        # OpenCV's WebP quality above 100 selects lossless compression.
        quality = WEBP_LOSSLESS if encoding.lossless else encoding.quality
        ok, buffer = cv2.imencode(".webp", pixels, [cv2.IMWRITE_WEBP_QUALITY, quality])
    else:
        ok, buffer = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RenderError(INVALID_QUALITY, f"the {encoding.format} encoder refused the image")
    return bytes(buffer.tobytes())

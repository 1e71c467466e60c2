"""DICOM bytes to frames as numpy arrays, one frame at a time.

Greyscale frames keep their stored values (the LUT stages need them); colour frames become
8-bit RGB here because nothing downstream windows colour. Compressed syntaxes decode through
pydicom's plugins (pylibjpeg: JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE).
"""

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import pixel_array

from server.render.errors import FRAME_OUT_OF_RANGE, UNDECODABLE, RenderError
from server.render.header import ImageInfo, image_info


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    """A decoded frame shared read-only between threads and caches."""

    info: ImageInfo
    frame: int
    pixels: npt.NDArray[Any]

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


def read_dataset(data: bytes) -> Dataset:
    """Parse a Part 10 file (or a bare dataset); anything pydicom cannot parse is undecodable."""
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many unrelated types for malformed input
        raise RenderError(UNDECODABLE, f"not a readable DICOM object: {exc}") from exc


def decode_frame(ds: Dataset, info: ImageInfo, frame: int) -> DecodedFrame:
    """Decode frame `frame` (0-based) of `ds`, validated against `info` first."""
    if not 0 <= frame < info.frames:
        raise RenderError(
            FRAME_OUT_OF_RANGE, f"frame {frame + 1} requested, the object has {info.frames}"
        )
    try:
        native = None if info.is_color else _native_grey(ds, info, frame)
        if native is not None:
            pixels = native
        elif info.is_color:
            pixels = _color(ds, info, frame)
        else:
            pixels = pixel_array(ds, index=frame)
    except RenderError:
        raise
    except Exception as exc:  # decoder plugins raise assorted types for corrupt data
        raise RenderError(UNDECODABLE, f"pixel data could not be decoded: {exc}") from exc
    expected = (info.rows, info.columns, 3) if info.is_color else (info.rows, info.columns)
    if pixels.shape != expected:
        raise RenderError(UNDECODABLE, f"decoded shape {pixels.shape}, expected {expected}")
    pixels = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))
    pixels.setflags(write=False)
    return DecodedFrame(info=info, frame=frame, pixels=pixels)


def decode_bytes(data: bytes, frame: int = 0) -> DecodedFrame:
    ds = read_dataset(data)
    return decode_frame(ds, image_info(ds), frame)


def _native_grey(ds: Dataset, info: ImageInfo, frame: int) -> npt.NDArray[Any] | None:
    """Uncompressed little-endian 8/16-bit greyscale viewed in place (no pydicom decoder).

    This is the common CT/MR case, and pydicom's generic path costs more than the whole
    window/level and JPEG encode; anything else returns None and goes through pydicom.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    if (
        syntax is None
        or syntax.is_compressed
        or not syntax.is_little_endian
        or syntax.is_deflated
        or info.bits_allocated not in (8, 16)
        or info.samples_per_pixel != 1
    ):
        return None
    itemsize = info.bits_allocated // 8
    count = info.rows * info.columns
    data = ds.PixelData
    if not isinstance(data, bytes) or len(data) < (frame + 1) * count * itemsize:
        raise RenderError(UNDECODABLE, "Pixel Data is shorter than Rows x Columns x frames")
    kind = "i" if info.signed else "u"
    pixels = np.frombuffer(
        data, dtype=f"<{kind}{itemsize}", count=count, offset=frame * count * itemsize
    )
    pixels = pixels.reshape(info.rows, info.columns)
    unused = info.bits_allocated - info.bits_stored
    if unused == 0:
        # A view into a multi-frame buffer would keep every frame alive in the cache.
        return pixels.copy() if info.frames > 1 else pixels
    masked: npt.NDArray[Any]
    if info.signed:
        masked = np.right_shift(np.left_shift(pixels, unused), unused)
    else:
        masked = np.bitwise_and(pixels, (1 << info.bits_stored) - 1)
    return masked


def _color(ds: Dataset, info: ImageInfo, frame: int) -> npt.NDArray[np.uint8]:
    if info.photometric == "PALETTE COLOR":
        indices = pixel_array(ds, index=frame)
        rgb = apply_color_lut(indices, ds)
        depth = 16 if rgb.dtype == np.uint16 else 8
        # Some writers declare 16-bit palette entries but fill them with 8-bit values.
        if depth == 16 and int(rgb.max(initial=0)) <= 255:
            depth = 8
    else:
        rgb = pixel_array(ds, index=frame, as_rgb=True)
        depth = info.bits_stored
    return _to_8bit(rgb, depth)


def _to_8bit(rgb: npt.NDArray[Any], depth: int) -> npt.NDArray[np.uint8]:
    if rgb.dtype == np.uint8:
        return rgb.astype(np.uint8, copy=False)
    shift = max(depth - 8, 0)
    return np.asarray(np.minimum(rgb.astype(np.uint64) >> shift, 255), dtype=np.uint8)

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

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


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
    return DecodedFrame(info=info.for_frame(frame), frame=frame, pixels=pixels)


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
        or not _plain_grey(info)
    ):
        return None
    data = ds.PixelData
    if not isinstance(data, bytes) or len(data) < info.frames * _frame_bytes(info):
        raise RenderError(UNDECODABLE, "Pixel Data is shorter than Rows x Columns x frames")
    return _frame_view(data, 0, info, frame)


def decode_known(data: bytes, info: ImageInfo, frame: int) -> DecodedFrame:
    """Decode an instance whose header was read before (a SOP Instance UID names immutable
    content): uncompressed greyscale Pixel Data is found at the end of the file without
    parsing the header again, which is most of a cold frame's cost; anything else is parsed.
    """
    offset = _trailing_pixel_data(data, info)
    if offset is None:
        return decode_frame(read_dataset(data), info, frame)
    if not 0 <= frame < info.frames:
        raise RenderError(
            FRAME_OUT_OF_RANGE, f"frame {frame + 1} requested, the object has {info.frames}"
        )
    pixels = _frame_view(data, offset, info, frame)
    pixels.setflags(write=False)
    return DecodedFrame(info=info.for_frame(frame), frame=frame, pixels=pixels)


def _trailing_pixel_data(data: bytes, info: ImageInfo) -> int | None:
    """Offset of the Pixel Data value if it is the file's last element, else None.

    The element header is checked right before the value (tag, VR, length equal to the
    size the header promises), so a match cannot be a coincidence inside pixel values: the
    value must end exactly at the end of the file.
    """
    if info.pixel_encoding is None or not _plain_grey(info):
        return None
    size = info.frames * _frame_bytes(info)
    padded = size + (size & 1)
    start = len(data) - padded
    header = 12 if info.pixel_encoding == "explicit" else 8
    if start - header < 0 or data[start - header : start - header + 4] != PIXEL_DATA_TAG:
        return None
    if info.pixel_encoding == "explicit" and data[start - 8 : start - 6] not in (b"OW", b"OB"):
        return None
    if int.from_bytes(data[start - 4 : start], "little") != padded:
        return None
    return start


def _plain_grey(info: ImageInfo) -> bool:
    return not info.is_color and info.bits_allocated in (8, 16) and info.samples_per_pixel == 1


def _frame_bytes(info: ImageInfo) -> int:
    return info.rows * info.columns * (info.bits_allocated // 8)


def _frame_view(data: bytes, offset: int, info: ImageInfo, frame: int) -> npt.NDArray[Any]:
    """One frame's stored values, masked to Bits Stored, copied unless it is the whole buffer."""
    itemsize = info.bits_allocated // 8
    count = info.rows * info.columns
    kind = "i" if info.signed else "u"
    pixels = np.frombuffer(
        data, dtype=f"<{kind}{itemsize}", count=count, offset=offset + frame * count * itemsize
    ).reshape(info.rows, info.columns)
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

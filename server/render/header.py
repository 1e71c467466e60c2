"""Everything the pipeline needs from a DICOM header, read once into an immutable `ImageInfo`.

Reading attributes once keeps pydicom datasets out of the render path and the caches: an
`ImageInfo` is small, hashable by identity and safe to share between threads.
"""

import math
from dataclasses import dataclass, replace
from typing import Any

from server.render.errors import TOO_LARGE, UNDECODABLE, UNSUPPORTED, RenderError
from server.render.lut import Lut, parse_lut
from server.render.modality_lut import ModalityLut, modality_lut_from
from server.render.voi_lut import Window, parse_function

MAX_FRAME_PIXELS = 100_000_000
MAX_FRAMES = 100_000
COLOR_PHOTOMETRICS = frozenset(
    {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}
)
GREY_PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2"})


@dataclass(frozen=True, eq=False)
class FrameFacts:
    """What an enhanced multi-frame object may set per frame (Per-Frame Functional Groups),
    already resolved against the shared groups and the top level."""

    modality_lut: ModalityLut
    windows: tuple[Window, ...]
    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, float, float, float, float, float] | None


@dataclass(frozen=True, eq=False)
class ImageInfo:
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    rows: int
    columns: int
    frames: int
    samples_per_pixel: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    signed: bool
    modality_lut: ModalityLut
    windows: tuple[Window, ...]
    voi_luts: tuple[Lut, ...]
    inverse: bool
    pixel_spacing: tuple[float, float] | None
    spacing_source: str | None
    aspect: tuple[float, float]
    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, float, float, float, float, float] | None
    instance_number: int | None
    pixel_encoding: str | None = None
    frame_facts: tuple[FrameFacts, ...] = ()

    def for_frame(self, frame: int) -> "ImageInfo":
        """This object as frame `frame` sees it (itself unless frames differ)."""
        if not self.frame_facts:
            return self
        facts = self.frame_facts[frame]
        return replace(
            self,
            modality_lut=facts.modality_lut,
            windows=facts.windows,
            image_position=facts.image_position,
            image_orientation=facts.image_orientation,
        )

    @property
    def is_color(self) -> bool:
        return self.photometric in COLOR_PHOTOMETRICS

    @property
    def stored_range(self) -> tuple[int, int] | None:
        """The stored values Bits Stored allows; None for float pixel data (no table)."""
        if self.bits_stored > 16:
            return None
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


def image_info(ds: Any) -> ImageInfo:
    """Validate geometry before any pixel is allocated and collect the rendering attributes."""
    try:
        rows = int(ds.Rows)
        columns = int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits_allocated = int(ds.BitsAllocated)
        bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        photometric = str(ds.PhotometricInterpretation).strip().upper()
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RenderError(
            UNDECODABLE, f"missing or malformed Image Pixel attribute: {exc}"
        ) from exc
    if "PixelData" not in ds:
        raise RenderError(UNDECODABLE, "the object has no Pixel Data")
    if rows <= 0 or columns <= 0 or frames <= 0 or samples not in (1, 3):
        raise RenderError(UNDECODABLE, "Rows, Columns, frames or Samples per Pixel out of range")
    if rows * columns > MAX_FRAME_PIXELS or frames > MAX_FRAMES:
        raise RenderError(TOO_LARGE, f"{columns}x{rows}x{frames} exceeds the render limits")
    if bits_allocated not in (1, 8, 16, 32, 64) or not 1 <= bits_stored <= bits_allocated:
        raise RenderError(UNDECODABLE, "Bits Allocated / Bits Stored are inconsistent")
    if photometric not in COLOR_PHOTOMETRICS | GREY_PHOTOMETRICS:
        raise RenderError(UNSUPPORTED, f"Photometric Interpretation {photometric} unsupported")
    little_endian = _little_endian(ds)
    shared = _functional_group(ds)
    modality_source = _first(shared, "PixelValueTransformationSequence") or ds
    voi_source = _first(shared, "FrameVOILUTSequence") or ds
    measures = _first(shared, "PixelMeasuresSequence")
    plane = _first(shared, "PlaneOrientationSequence")
    position = _first(shared, "PlanePositionSequence")
    spacing, source = _spacing(measures or ds, ds)
    modality_lut = _modality(ds, modality_source, signed, little_endian)
    windows = _windows(voi_source)
    image_position = _vector3((position or ds).get("ImagePositionPatient"))
    image_orientation = _vector6((plane or ds).get("ImageOrientationPatient"))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or ()
    facts: tuple[FrameFacts, ...] = ()
    if len(per_frame) == frames:
        facts = tuple(
            FrameFacts(
                modality_lut=_modality(ds, own, signed, little_endian)
                if (own := _first(item, "PixelValueTransformationSequence"))
                else modality_lut,
                windows=_windows(own_voi)
                if (own_voi := _first(item, "FrameVOILUTSequence"))
                else windows,
                image_position=_vector3(own_position.get("ImagePositionPatient"))
                if (own_position := _first(item, "PlanePositionSequence"))
                else image_position,
                image_orientation=_vector6(own_plane.get("ImageOrientationPatient"))
                if (own_plane := _first(item, "PlaneOrientationSequence"))
                else image_orientation,
            )
            for item in per_frame
        )
    info = ImageInfo(
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        modality=str(ds.get("Modality", "")),
        rows=rows,
        columns=columns,
        frames=frames,
        samples_per_pixel=samples,
        photometric=photometric,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        signed=signed,
        modality_lut=modality_lut,
        windows=windows,
        voi_luts=tuple(
            parse_lut(item, signed=signed, little_endian=little_endian)
            for item in (voi_source.get("VOILUTSequence") or ())
        ),
        inverse=photometric == "MONOCHROME1"
        or str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE",
        pixel_spacing=spacing,
        spacing_source=source,
        aspect=_aspect(ds, spacing),
        image_position=image_position,
        image_orientation=image_orientation,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        pixel_encoding=_pixel_encoding(ds),
        frame_facts=facts,
    )
    return info.for_frame(0)


def _modality(ds: Any, source: Any, signed: bool, little_endian: bool) -> ModalityLut:
    lut = modality_lut_from(source, signed=signed, little_endian=little_endian)
    if not lut.units and str(ds.get("Modality", "")) == "CT" and lut.is_linear:
        return ModalityLut(slope=lut.slope, intercept=lut.intercept, units="HU")
    return lut


def _windows(source: Any) -> tuple[Window, ...]:
    centers = _float_list(source.get("WindowCenter"))
    widths = _float_list(source.get("WindowWidth"))
    explanations = source.get("WindowCenterWidthExplanation") or []
    if isinstance(explanations, str):
        explanations = [explanations]
    try:
        function = parse_function(source.get("VOILUTFunction"))
    except RenderError:
        return ()
    windows = []
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        label = str(explanations[i]) if i < len(explanations) else ""
        try:
            windows.append(Window(center, width, function, label))
        except RenderError:
            continue
    return tuple(windows)


def _spacing(source: Any, ds: Any) -> tuple[tuple[float, float] | None, str | None]:
    for keyword, origin in (
        ("PixelSpacing", "pixel_spacing"),
        ("ImagerPixelSpacing", "imager_pixel_spacing"),
    ):
        value = _floats(source.get(keyword) or ds.get(keyword), 2)
        if value is not None and value[0] > 0 and value[1] > 0:
            return (value[0], value[1]), origin
    return None, None


def _aspect(ds: Any, spacing: tuple[float, float] | None) -> tuple[float, float]:
    """Vertical:horizontal pixel size, so non-square pixels display undistorted."""
    if spacing is not None:
        return spacing
    ratio = _floats(ds.get("PixelAspectRatio"), 2)
    if ratio is not None and ratio[0] > 0 and ratio[1] > 0:
        return ratio[0], ratio[1]
    return 1.0, 1.0


def _pixel_encoding(ds: Any) -> str | None:
    """ "explicit" or "implicit" for uncompressed little-endian Pixel Data, else None: the
    layouts `decode.decode_known` can read without parsing the header again."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is None or syntax.is_compressed or syntax.is_deflated or not syntax.is_little_endian:
        return None
    return "implicit" if syntax.is_implicit_VR else "explicit"


def _little_endian(ds: Any) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is not None:
        return bool(syntax.is_little_endian)
    return True


def _functional_group(ds: Any) -> Any:
    return _first(ds, "SharedFunctionalGroupsSequence")


def _first(ds: Any, keyword: str) -> Any:
    if ds is None:
        return None
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _float_list(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    scalar = isinstance(value, str | bytes) or not hasattr(value, "__iter__")
    items = [value] if scalar else list(value)
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            return []
    return out


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    numbers = _float_list(value)
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        return None
    return tuple(numbers)


def _vector3(value: Any) -> tuple[float, float, float] | None:
    n = _floats(value, 3)
    return None if n is None else (n[0], n[1], n[2])


def _vector6(value: Any) -> tuple[float, float, float, float, float, float] | None:
    n = _floats(value, 6)
    return None if n is None else (n[0], n[1], n[2], n[3], n[4], n[5])


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None

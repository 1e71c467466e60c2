"""Vetting received objects: every bad input gets the right failure, good ones pass as sent."""

from __future__ import annotations

import pytest
from pydicom.uid import MRImageStorage

from server.dicom.parse import Failure, Rejected, prepare
from tests.dicom.samples import sample
from tests.dicom.synthetic import ct_series, to_bytes


@pytest.mark.parametrize(
    ("name", "syntax", "frames"),
    [
        ("CT_small.dcm", "1.2.840.10008.1.2.1", 1),
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2", 1),
        ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2", 1),
        ("JPEG-lossy.dcm", "1.2.840.10008.1.2.4.51", 1),
        ("SC_rgb_jpeg_gdcm.dcm", "1.2.840.10008.1.2.4.70", 1),
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", 1),
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90", 1),
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.91", 1),
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5", 1),
        ("image_dfl.dcm", "1.2.840.10008.1.2.1.99", 1),
        ("SC_rgb_rle_2frame.dcm", "1.2.840.10008.1.2.5", 2),
        ("examples_ybr_color.dcm", "1.2.840.10008.1.2.4.50", 30),
        ("SC_ybr_full_422_uncompressed.dcm", "1.2.840.10008.1.2.1", 1),
        ("liver_1frame.dcm", "1.2.840.10008.1.2.1", 1),
    ],
)
def test_samples_are_accepted_as_sent(name: str, syntax: str, frames: int) -> None:
    raw = sample(name)
    prepared = prepare(raw)
    assert prepared.raw is raw
    assert prepared.transfer_syntax_uid == syntax
    assert prepared.frames == frames
    assert prepared.json["7FE00010"] == {"vr": "OW", "BulkDataURI": ""}


def test_monochrome1_and_rgb_keep_their_photometric_interpretation() -> None:
    series = ct_series(1)
    ds = series.datasets[0]
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert prepare(to_bytes(ds)).value("00280004") == "MONOCHROME1"
    assert prepare(sample("SC_rgb_small_odd.dcm")).value("00280004") == "RGB"


def _reject(raw: bytes, expected: str | None = None) -> Rejected:
    with pytest.raises(Rejected) as info:
        prepare(raw, expected)
    return info.value


def test_non_dicom_bytes() -> None:
    assert _reject(b"hello world" * 20).failure is Failure.CANNOT_UNDERSTAND
    assert _reject(b"").failure is Failure.CANNOT_UNDERSTAND
    assert _reject(b"\0" * 128 + b"DICM" + b"\xff" * 64).failure is Failure.CANNOT_UNDERSTAND


def test_truncated_file() -> None:
    raw = to_bytes(ct_series(1).datasets[0])
    for cut in (140, 300, len(raw) - 100):
        assert _reject(raw[:cut]).failure in (
            Failure.CANNOT_UNDERSTAND,
            Failure.DOES_NOT_MATCH_SOP_CLASS,
        )
    assert "truncated" in _reject(raw[:-100]).reason


@pytest.mark.parametrize(
    "keyword", ["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"]
)
def test_missing_required_uid(keyword: str) -> None:
    ds = ct_series(1).datasets[0]
    delattr(ds, keyword)
    rejected = _reject(to_bytes(ds))
    assert rejected.failure is Failure.DOES_NOT_MATCH_SOP_CLASS
    assert keyword in rejected.reason


def test_invalid_uid_value() -> None:
    ds = ct_series(1).datasets[0]
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        ds.SeriesInstanceUID = "1.2.abc"
    assert _reject(to_bytes(ds)).failure is Failure.DOES_NOT_MATCH_SOP_CLASS


def test_sop_class_differs_from_negotiated() -> None:
    raw = to_bytes(ct_series(1).datasets[0])
    rejected = _reject(raw, MRImageStorage)
    assert rejected.failure is Failure.DOES_NOT_MATCH_SOP_CLASS


def test_pixel_length_mismatch() -> None:
    ds = ct_series(1, rows=16, columns=16).datasets[0]
    ds.PixelData = ds.PixelData[:-64]
    rejected = _reject(to_bytes(ds))
    assert rejected.failure is Failure.DOES_NOT_MATCH_SOP_CLASS
    assert "needs 512" in rejected.reason


def test_frames_times_size_must_match() -> None:
    ds = ct_series(1, rows=16, columns=16).datasets[0]
    ds.NumberOfFrames = 3
    assert _reject(to_bytes(ds)).failure is Failure.DOES_NOT_MATCH_SOP_CLASS


def test_pixel_bomb_is_refused_before_allocation() -> None:
    ds = ct_series(1, rows=16, columns=16).datasets[0]
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 1000
    rejected = _reject(to_bytes(ds))
    assert rejected.failure is Failure.DOES_NOT_MATCH_SOP_CLASS
    assert "limit" in rejected.reason


def test_zero_or_absurd_dimensions() -> None:
    ds = ct_series(1).datasets[0]
    ds.Rows = 0
    assert _reject(to_bytes(ds)).failure is Failure.DOES_NOT_MATCH_SOP_CLASS
    ds = ct_series(1).datasets[0]
    ds.BitsAllocated = 12
    assert _reject(to_bytes(ds)).failure is Failure.DOES_NOT_MATCH_SOP_CLASS


def test_json_keeps_header_and_references_pixels() -> None:
    prepared = prepare(to_bytes(ct_series(1, patient_name="Roe^Richard").datasets[0]))
    assert prepared.json["00100010"]["Value"] == [{"Alphabetic": "Roe^Richard"}]
    assert prepared.value("00080060") == "CT"
    assert "InlineBinary" not in prepared.json["7FE00010"]


def test_a_uid_with_several_values_is_refused() -> None:
    ds = ct_series(1).datasets[0]
    ds.SOPInstanceUID = ["1.2.3", "1.2.4"]
    rejected = _reject(to_bytes(ds))
    assert rejected.failure is Failure.DOES_NOT_MATCH_SOP_CLASS
    assert "SOPInstanceUID" in rejected.reason


def test_a_frame_count_that_is_not_one_number_is_refused() -> None:
    ds = ct_series(1, rows=16, columns=16).datasets[0]
    ds.NumberOfFrames = ["2", "3"]
    several = _reject(to_bytes(ds))
    ds.NumberOfFrames = "97"
    element = b"\x28\x00\x08\x00IS\x02\x0097"
    raw = to_bytes(ds)
    assert raw.count(element) == 1
    letters = _reject(raw.replace(element, element[:-2] + b"9x"))
    for rejected in (several, letters):
        assert rejected.failure is Failure.DOES_NOT_MATCH_SOP_CLASS
        assert "NumberOfFrames" in rejected.reason

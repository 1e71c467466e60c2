"""Decoding pydicom's and pydicom-data's sample files: compressed syntaxes, colour models,
multi-frame objects, LUT sequences, and refusal of bad input."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

from server.render.compose import choose_voi, display_pixels
from server.render.decode import (
    _trailing_pixel_data,
    decode_bytes,
    decode_frame,
    decode_known,
    read_dataset,
)
from server.render.errors import FRAME_OUT_OF_RANGE, TOO_LARGE, UNDECODABLE, RenderError
from server.render.header import image_info
from server.render.presets import presets_for
from tests.render.samples import sample, sample_bytes
from tests.support.synthetic import ct_series, dataset_bytes


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("693_J2KR.dcm", "693_UNCR.dcm"),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
    ],
)
def test_lossless_syntaxes_decode_to_the_uncompressed_values(
    compressed: str, reference: str
) -> None:
    expected = decode_bytes(sample_bytes(reference)).pixels
    actual = decode_bytes(sample_bytes(compressed)).pixels
    assert actual.dtype.isnative
    np.testing.assert_array_equal(actual, expected)


def test_jpeg_lossless_process_14_decodes() -> None:
    decoded = decode_bytes(sample_bytes("JPGLosslessP14SV1_1s_1f_8b.dcm"))
    assert decoded.pixels.shape == (768, 1024)
    assert decoded.pixels.dtype == np.uint8


def test_multi_frame_frames_are_decoded_individually_and_range_checked() -> None:
    data = sample_bytes("emri_small.dcm")
    ds = read_dataset(data)
    info = image_info(ds)
    assert info.frames == 10
    whole = pydicom.dcmread(sample("emri_small.dcm")).pixel_array
    np.testing.assert_array_equal(decode_frame(ds, info, 9).pixels, whole[9])
    for bad in (-1, 10):
        with pytest.raises(RenderError) as caught:
            decode_frame(ds, info, bad)
        assert caught.value.code == FRAME_OUT_OF_RANGE


@pytest.mark.parametrize(
    "name", ["SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm"]
)
def test_ybr_becomes_the_rgb_of_the_original_up_to_rounding(name: str) -> None:
    """YBR is stored with 8-bit rounding (and 4:2:2 halves chroma), so a few levels differ."""
    rgb = decode_bytes(sample_bytes("SC_rgb.dcm")).pixels.astype(int)
    ybr = decode_bytes(sample_bytes(name)).pixels.astype(int)
    assert ybr.shape == rgb.shape == (100, 100, 3)
    assert np.abs(ybr - rgb).mean() < 1.0
    assert np.abs(ybr - rgb).max() <= 8


def test_jpeg_baseline_ybr_multi_frame_decodes_to_rgb() -> None:
    decoded = decode_bytes(sample_bytes("color3d_jpeg_baseline.dcm"), frame=119)
    assert decoded.info.photometric == "YBR_FULL_422"
    assert decoded.pixels.shape == (480, 640, 3)
    assert decoded.pixels.dtype == np.uint8


def test_sixteen_bit_rgb_is_reduced_to_eight_bits() -> None:
    eight = decode_bytes(sample_bytes("SC_rgb.dcm")).pixels
    sixteen = decode_bytes(sample_bytes("SC_rgb_16bit.dcm")).pixels
    assert np.abs(sixteen.astype(int) - eight.astype(int)).max() <= 1


def test_palette_colour_is_expanded_through_its_lookup_tables() -> None:
    decoded = decode_bytes(sample_bytes("OBXXXX1A.dcm"))
    ds = pydicom.dcmread(sample("OBXXXX1A.dcm"))
    index = ds.pixel_array
    red = np.frombuffer(ds.RedPaletteColorLookupTableData, dtype="<u2")
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    r, c = 300, 400
    assert decoded.pixels.shape == (600, 800, 3)
    expected = red[int(index[r, c]) - first] >> 8
    assert abs(int(decoded.pixels[r, c, 0]) - int(expected)) <= 1


def test_monochrome1_is_displayed_inverted() -> None:
    decoded = decode_bytes(sample_bytes("RG3_UNCR.dcm"))
    assert decoded.info.inverse
    low = decoded.pixels == decoded.pixels.min()
    grey = display_pixels(decoded, None)
    assert grey[low].min() == 255
    assert display_pixels(decoded, None, invert=True)[low].max() == 0


def test_modality_lut_sequence_matches_pydicom() -> None:
    decoded = decode_bytes(sample_bytes("mlut_18.dcm"))
    ds = pydicom.dcmread(sample("mlut_18.dcm"))
    expected = apply_modality_lut(ds.pixel_array, ds)
    actual = decoded.info.modality_lut.apply(decoded.pixels)
    np.testing.assert_array_equal(actual, expected.astype(np.float64))


def test_voi_lut_sequence_matches_pydicom_scaled_to_eight_bits() -> None:
    decoded = decode_bytes(sample_bytes("vlut_04.dcm"))
    ds = pydicom.dcmread(sample("vlut_04.dcm"))
    expected = apply_voi_lut(ds.pixel_array, ds).astype(np.float64) * 255 / 65535
    grey = display_pixels(decoded, decoded.info.voi_luts[0])
    assert np.abs(grey - expected).max() <= 1


def test_synthetic_ct_carries_known_hounsfield_units() -> None:
    decoded = decode_bytes(dataset_bytes(ct_series(3, rows=64, cols=64)[2]))
    hu = decoded.info.modality_lut.apply(decoded.pixels)
    assert decoded.info.modality_lut.units == "HU"
    assert hu[32, 32] == 40
    assert hu[63, 0] == -1000
    assert hu[0, 2] == 2


def test_corrupt_bytes_are_undecodable() -> None:
    with pytest.raises(RenderError) as caught:
        decode_bytes(b"\x00" * 50 + b"not dicom at all")
    assert caught.value.code == UNDECODABLE


def test_truncated_compressed_data_is_undecodable() -> None:
    data = sample_bytes("MR_small_jp2klossless.dcm")
    ds = read_dataset(data)
    fragment_end = len(data) - 400
    with pytest.raises(RenderError) as caught:
        decode_bytes(data[:fragment_end])
    assert caught.value.code == UNDECODABLE
    assert image_info(ds).rows == 64


def test_absurd_dimensions_are_refused_before_allocation() -> None:
    ds = ct_series(1, rows=8, cols=8)[0]
    ds.Rows = 65535
    ds.Columns = 65535
    with pytest.raises(RenderError) as caught:
        decode_bytes(dataset_bytes(ds))
    assert caught.value.code == TOO_LARGE


@pytest.mark.parametrize("signed", [False, True])
def test_bits_above_bits_stored_are_ignored_like_pydicom_does(signed: bool) -> None:
    ds = ct_series(1, rows=4, cols=4)[0]
    raw = np.arange(16, dtype=np.uint16).reshape(4, 4) * 300
    raw |= 0xF000  # garbage (e.g. overlay bits) above Bits Stored = 12
    ds.PixelRepresentation = int(signed)
    ds.PixelData = raw.astype("<u2").tobytes()
    ours = decode_bytes(dataset_bytes(ds)).pixels
    reference = pydicom.dcmread(io.BytesIO(dataset_bytes(ds))).pixel_array
    np.testing.assert_array_equal(ours, reference)
    assert ours.min() < 0 if signed else ours.max() <= 4095


def test_native_multi_frame_frames_do_not_share_the_whole_buffer() -> None:
    data = sample_bytes("emri_small.dcm")
    pixels = decode_bytes(data, frame=3).pixels
    assert pixels.base is None or pixels.base.nbytes == pixels.nbytes


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("MR_small.dcm", 0),
        ("MR_small_implicit.dcm", 0),
        ("MR_small_bigendian.dcm", 0),
        ("MR_small_RLE.dcm", 0),
        ("693_UNCI.dcm", 0),
        ("emri_small.dcm", 7),
        ("vlut_04.dcm", 0),
    ],
)
def test_decoding_with_a_known_header_gives_the_same_pixels(name: str, frame: int) -> None:
    data = sample_bytes(name)
    ds = read_dataset(data)
    info = image_info(ds)
    known = decode_known(data, info, frame)
    np.testing.assert_array_equal(known.pixels, decode_frame(ds, info, frame).pixels)
    assert not known.pixels.flags.writeable


def test_known_header_path_reads_pixel_data_that_is_not_last_through_pydicom() -> None:
    ds = ct_series(1, rows=16, cols=16)[0]
    ds.DataSetTrailingPadding = b"\x00" * 64
    data = dataset_bytes(ds)
    info = image_info(read_dataset(data))
    expected = decode_bytes(data).pixels
    np.testing.assert_array_equal(decode_known(data, info, 0).pixels, expected)
    with pytest.raises(RenderError) as caught:
        decode_known(data, info, 1)
    assert caught.value.code == FRAME_OUT_OF_RANGE


def test_known_header_path_finds_trailing_pixel_data_without_parsing() -> None:
    ds = ct_series(1, rows=16, cols=16)[0]
    data = dataset_bytes(ds)
    info = image_info(read_dataset(data))
    assert _trailing_pixel_data(data, info) == len(data) - 16 * 16 * 2
    np.testing.assert_array_equal(decode_known(data, info, 0).pixels, decode_bytes(data).pixels)
    with pytest.raises(RenderError) as caught:
        decode_known(data, info, 1)
    assert caught.value.code == FRAME_OUT_OF_RANGE


def test_enhanced_multi_frame_takes_per_frame_and_shared_functional_groups() -> None:
    data = sample_bytes("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(sample("eCT_Supplemental.dcm"))
    shared = ds.SharedFunctionalGroupsSequence[0]
    first, second = decode_bytes(data, 0), decode_bytes(data, 1)
    assert first.info.image_position == pytest.approx((99.5, -301.5, -159.0))
    assert second.info.image_position == pytest.approx((99.5, -301.5, -149.0))
    voi = shared.FrameVOILUTSequence[0]
    assert second.info.windows[0].center == float(voi.WindowCenter)
    rescale = shared.PixelValueTransformationSequence[0]
    assert second.info.modality_lut.intercept == float(rescale.RescaleIntercept)
    assert second.info.pixel_spacing is not None


def test_a_voi_lut_is_chosen_by_its_preset_name() -> None:
    decoded = decode_bytes(sample_bytes("vlut_04.dcm"))
    names = [p.name for p in presets_for(decoded.info)]
    assert names[0] == "voi-lut-1"
    chosen = choose_voi(decoded.info, decoded.pixels, preset="voi-lut-1")
    assert chosen is decoded.info.voi_luts[0]

"""C-ECHO and C-STORE through a real pynetdicom SCU against the running gateway."""

from __future__ import annotations

import io

import pydicom
import pytest

from server.dicom.archive import ARCHIVE
from tests.dicom.conftest import Archive
from tests.dicom.samples import sample
from tests.dicom.scu import associate, in_thread, make_ae, store
from tests.dicom.synthetic import ct_series, pixels


def _echo(port: int) -> int:
    ae = make_ae()
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = associate(ae, port)
    assert assoc.is_established
    status = assoc.send_c_echo()
    assoc.release()
    return int(status.Status)


async def test_echo(archive: Archive) -> None:
    assert await in_thread(_echo, archive.port) == 0x0000


async def test_store_indexes_and_serves_bytes(archive: Archive) -> None:
    series = ct_series(4)
    statuses = await in_thread(store, archive.port, series.datasets)
    assert statuses == [0, 0, 0, 0]
    uids = await archive.app[ARCHIVE].series_instance_uids(series.series_uid)
    by_number = sorted(series.datasets, key=lambda ds: int(ds.InstanceNumber))
    assert uids == [str(ds.SOPInstanceUID) for ds in by_number]
    raw = await archive.app[ARCHIVE].instance_bytes(uids[0])
    back = pydicom.dcmread(io.BytesIO(raw))
    assert (back.pixel_array == pixels(1, 16, 16)).all()
    await archive.wait_for("dicom.association.closed")
    topics = archive.topics()
    assert topics[0] == "dicom.association.opened"
    assert topics.count("dicom.instance.stored") == 4
    closed = archive.events[-1]
    assert closed.data["stored"] == 4
    assert closed.data["aborted"] is False
    assert closed.facility == "main"


@pytest.mark.parametrize(
    "name",
    [
        "JPEG-lossy.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "JPEG2000.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
        "examples_ybr_color.dcm",
    ],
)
async def test_compressed_transfer_syntaxes_are_stored_as_sent(archive: Archive, name: str) -> None:
    sent = pydicom.dcmread(io.BytesIO(sample(name)))
    assert await in_thread(store, archive.port, [sent]) == [0]
    raw = await archive.app[ARCHIVE].instance_bytes(str(sent.SOPInstanceUID))
    back = pydicom.dcmread(io.BytesIO(raw))
    assert back.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert back.PixelData == sent.PixelData

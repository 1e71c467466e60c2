"""DICOMweb through dicomweb-client (the library OHIF-style tools use) and raw HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from dicomweb_client.api import DICOMwebClient

from server.appkeys import STORE
from server.auth.roles import Role
from server.dicom.index import METADATA
from server.dicom.keys import INGEST
from tests.dicom.conftest import Archive
from tests.dicom.samples import sample
from tests.dicom.synthetic import ct_series, to_bytes
from tests.support.sockets import server_url


def _client(archive: Archive, token: str) -> DICOMwebClient:
    return DICOMwebClient(
        url=f"{server_url(archive.client)}/dicom-web",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_round_trip_store_search_retrieve(archive: Archive) -> None:
    token = await archive.token_for("tech", Role.TECHNICIAN)
    series = ct_series(3, rows=32, columns=32, patient_name="Web^Walter", patient_id="W1")
    web = _client(archive, token)

    def run() -> dict[str, Any]:
        stored = web.store_instances(series.datasets)
        found = web.search_for_studies(search_filters={"PatientName": "web*"})
        none = web.search_for_studies(search_filters={"PatientName": "nobody"})
        in_series = web.search_for_instances(
            study_instance_uid=series.study_uid, series_instance_uid=series.series_uid
        )
        retrieved = web.retrieve_series(series.study_uid, series.series_uid)
        metadata = web.retrieve_series_metadata(series.study_uid, series.series_uid)
        first = series.datasets[0]
        frames = web.retrieve_instance_frames(
            series.study_uid, series.series_uid, str(first.SOPInstanceUID), frame_numbers=[1]
        )
        return {
            "stored": stored,
            "found": found,
            "none": none,
            "in_series": in_series,
            "retrieved": retrieved,
            "metadata": metadata,
            "frames": frames,
        }

    result = await asyncio.to_thread(run)
    assert len(result["stored"].ReferencedSOPSequence) == 3
    assert [s["0020000D"]["Value"][0] for s in result["found"]] == [series.study_uid]
    assert result["found"][0]["00201208"]["Value"] == [3]
    assert result["none"] == []
    assert [i["00200013"]["Value"][0] for i in result["in_series"]] == [1, 2, 3]
    sent = {str(ds.SOPInstanceUID): ds.PixelData for ds in series.datasets}
    assert {str(ds.SOPInstanceUID): ds.PixelData for ds in result["retrieved"]} == sent
    assert len(result["metadata"]) == 3
    assert result["metadata"][0]["00100010"]["Value"] == [{"Alphabetic": "Web^Walter"}]
    assert "BulkDataURI" in result["metadata"][0]["7FE00010"]
    assert result["frames"] == [series.datasets[0].PixelData]


async def test_qido_paging_and_errors(archive: Archive) -> None:
    token = await archive.token_for("rad", Role.RADIOLOGIST)
    upload = await archive.token_for("tech", Role.TECHNICIAN)
    web = _client(archive, upload)
    for index in range(3):
        study = ct_series(1, patient_id=f"Q{index}", study_date=f"2024010{index + 1}")
        await asyncio.to_thread(web.store_instances, study.datasets)
    headers = {"Authorization": f"Bearer {token}"}
    response = await archive.client.get(
        "/dicom-web/studies?limit=2&offset=0&includefield=all", headers=headers
    )
    assert response.status == 200
    assert response.content_type == "application/dicom+json"
    page = await response.json()
    assert [s["00080020"]["Value"][0] for s in page] == ["20240103", "20240102"]
    response = await archive.client.get(
        "/dicom-web/studies?StudyDate=20240102-&00100020=Q*", headers=headers
    )
    assert len(await response.json()) == 2
    later = ct_series(1, patient_id="Q9", study_date="20240109")
    await asyncio.to_thread(web.store_instances, later.datasets)
    response = await archive.client.get(
        "/dicom-web/studies?StudyDate=20240102-&00100020=Q*", headers=headers
    )
    assert len(await response.json()) == 3
    response = await archive.client.get("/dicom-web/studies?NotAKeyword=1", headers=headers)
    assert response.status == 400
    response = await archive.client.get("/dicom-web/studies?StudyDate=2024", headers=headers)
    assert response.status == 400
    response = await archive.client.get("/dicom-web/studies")
    assert response.status == 401
    response = await archive.client.get("/dicom-web/studies/1.2.3/metadata", headers=headers)
    assert response.status == 404


def _multipart(parts: list[bytes], boundary: str = "b0undary") -> bytes:
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


async def test_stow_reports_failures_per_object(archive: Archive) -> None:
    token = await archive.token_for("tech", Role.TECHNICIAN)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary',
    }
    good = ct_series(1).datasets[0]
    bad = ct_series(1).datasets[0]
    bad.PixelData = bad.PixelData[:-2]
    body = _multipart([to_bytes(good), to_bytes(bad), b"not dicom at all" * 10])
    response = await archive.client.post("/dicom-web/studies", data=body, headers=headers)
    assert response.status == 202
    answer = await response.json()
    assert len(answer["00081199"]["Value"]) == 1
    reasons = [item["00081197"]["Value"][0] for item in answer["00081198"]["Value"]]
    assert reasons == [0xA900, 0xC000]

    response = await archive.client.post(
        f"/dicom-web/studies/{good.StudyInstanceUID}",
        data=_multipart([to_bytes(ct_series(1).datasets[0])]),
        headers=headers,
    )
    assert response.status == 409

    radiologist = await archive.token_for("rad", Role.RADIOLOGIST)
    response = await archive.client.post(
        "/dicom-web/studies",
        data=_multipart([to_bytes(good)]),
        headers={**headers, "Authorization": f"Bearer {radiologist}"},
    )
    assert response.status == 403
    response = await archive.client.post(
        "/dicom-web/studies", data=b"{}", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status == 415


async def test_compressed_sample_frames_come_back_as_stored(archive: Archive) -> None:
    token = await archive.token_for("tech", Role.TECHNICIAN)
    raw = sample("SC_rgb_rle_2frame.dcm")
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary',
    }
    response = await archive.client.post(
        "/dicom-web/studies", data=_multipart([raw]), headers=headers
    )
    assert response.status == 200, await response.text()
    web = _client(archive, token)
    import io

    import pydicom
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(io.BytesIO(raw))
    frames = await asyncio.to_thread(
        web.retrieve_instance_frames,
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
        [2],
    )
    assert frames == [list(generate_frames(ds.PixelData, number_of_frames=2))[1]]
    instance = await asyncio.to_thread(
        web.retrieve_instance,
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
    )
    assert instance.PixelData == ds.PixelData


async def test_searches_and_retrieves_stay_in_the_facility(archive: Archive) -> None:
    east = await archive.token_for("east-tech", Role.TECHNICIAN, facility="east")
    west = await archive.token_for("west-rad", Role.RADIOLOGIST, facility="west")
    series = ct_series(1)
    await asyncio.to_thread(_client(archive, east).store_instances, series.datasets)
    headers = {"Authorization": f"Bearer {west}"}
    response = await archive.client.get("/dicom-web/studies", headers=headers)
    assert await response.json() == []
    response = await archive.client.get(
        f"/dicom-web/studies/{series.study_uid}/metadata", headers=headers
    )
    assert response.status == 404
    response = await archive.client.get(
        f"/dicom-web/studies/{series.study_uid}",
        headers={**headers, "Accept": 'multipart/related; type="application/dicom"'},
    )
    assert response.status == 404
    found = await asyncio.to_thread(_client(archive, east).search_for_studies)
    assert len(found) == 1


async def test_retrieve_refuses_media_types_it_cannot_serve(archive: Archive) -> None:
    token = await archive.token_for("tech", Role.TECHNICIAN)
    series = ct_series(1)
    await asyncio.to_thread(_client(archive, token).store_instances, series.datasets)
    response = await archive.client.get(
        f"/dicom-web/studies/{series.study_uid}",
        headers={"Authorization": f"Bearer {token}", "Accept": "image/png"},
    )
    assert response.status == 406
    assert (await response.json())["error"]["code"] == "not_acceptable"


def _parts(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    boundary = content_type.split("boundary=")[1].split(";")[0].strip()
    parts = []
    for chunk in body.split(f"--{boundary}".encode())[1:-1]:
        head, _, payload = chunk.partition(b"\r\n\r\n")
        parts.append((head.decode(), payload[: -len(b"\r\n")]))
    return parts


async def test_retrieve_transcodes_to_explicit_little_endian_or_refuses(archive: Archive) -> None:
    import io

    import numpy as np
    import pydicom

    token = await archive.token_for("tech", Role.TECHNICIAN)
    raw = sample("SC_rgb_rle_2frame.dcm")
    stored = pydicom.dcmread(io.BytesIO(raw))
    response = await archive.client.post(
        "/dicom-web/studies",
        data=_multipart([raw]),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary',
        },
    )
    assert response.status == 200, await response.text()
    path = (
        f"/dicom-web/studies/{stored.StudyInstanceUID}/series/{stored.SeriesInstanceUID}"
        f"/instances/{stored.SOPInstanceUID}"
    )
    auth = {"Authorization": f"Bearer {token}"}

    response = await archive.client.get(
        path,
        headers={
            **auth,
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.1",
        },
    )
    assert response.status == 200, await response.text()
    [(head, payload)] = _parts(await response.read(), response.headers["Content-Type"])
    assert "transfer-syntax=1.2.840.10008.1.2.1" in head
    sent = pydicom.dcmread(io.BytesIO(payload))
    assert sent.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert sent.SOPInstanceUID == stored.SOPInstanceUID
    assert np.array_equal(sent.pixel_array, stored.pixel_array)

    response = await archive.client.get(
        path,
        headers={
            **auth,
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    [(head, payload)] = _parts(await response.read(), response.headers["Content-Type"])
    assert payload == raw
    assert f"transfer-syntax={stored.file_meta.TransferSyntaxUID}" in head

    response = await archive.client.get(
        path,
        headers={
            **auth,
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.4.50",
        },
    )
    assert response.status == 406
    error = (await response.json())["error"]
    assert error["code"] == "not_acceptable"
    assert "1.2.840.10008.1.2.5" in error["message"]
    assert "Explicit VR Little Endian" in error["message"]


def test_accept_header_parsing() -> None:
    from server.dicom.transcode import ANY, choose, parse_accept

    anything = parse_accept("")
    assert anything is not None
    assert ANY in anything.syntaxes
    both = parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50, '
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1; q=0.5'
    )
    assert both is not None
    assert both.syntaxes == {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"}
    assert choose("1.2.840.10008.1.2.4.50", both) == "1.2.840.10008.1.2.4.50"
    assert choose("1.2.840.10008.1.2.5", both) == "1.2.840.10008.1.2.1"
    assert choose("1.2.840.10008.1.2.2", both) is None
    assert parse_accept("image/png") is None
    assert parse_accept('multipart/related; type="image/jpeg"') is None
    assert parse_accept("application/dicom; q=0") is None


async def test_metadata_a_crash_left_unwritten_is_rebuilt_from_the_file(archive: Archive) -> None:
    """Metadata documents are written just after the sender is answered; if a node died in that
    gap, the metadata answer still holds every instance, rebuilt from its stored file."""
    token = await archive.token_for("tech", Role.TECHNICIAN)
    series = ct_series(3)
    await asyncio.to_thread(_client(archive, token).store_instances, series.datasets)
    await archive.app[INGEST].settled()
    lost = str(series.datasets[1].SOPInstanceUID)
    metadata = archive.app[STORE][METADATA]
    assert (await metadata.delete_one({"_id": lost})).deleted_count == 1
    found = await asyncio.to_thread(
        _client(archive, token).retrieve_series_metadata, series.study_uid, series.series_uid
    )
    assert sorted(m["00080018"]["Value"][0] for m in found) == sorted(
        str(ds.SOPInstanceUID) for ds in series.datasets
    )
    rebuilt = next(m for m in found if m["00080018"]["Value"][0] == lost)
    assert rebuilt["00100010"] == found[0]["00100010"]
    assert "BulkDataURI" in rebuilt["7FE00010"]
    assert await metadata.count_documents({"_id": lost}) == 1

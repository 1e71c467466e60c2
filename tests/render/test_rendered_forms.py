"""PS3.18 rendered forms: content negotiation, the source-rectangle viewport, WebP, and
multipart answers for multi-frame instances, frame lists, series and studies."""

from collections.abc import Awaitable, Callable

import cv2
import numpy as np
import pydicom
import pytest
from aiohttp import MultipartReader, web
from aiohttp.test_utils import TestClient

from server.app import AppOptions, build_app
from server.config import Settings
from server.http.render_routes import RENDER_ARCHIVE
from server.render.compose import render_image
from server.render.decode import DecodedFrame, decode_bytes
from server.render.encode import Encoding, ImageFormat, encode
from server.render.errors import INVALID_VIEWPORT, NOT_ACCEPTABLE, TOO_LARGE, RenderError
from server.render.params import negotiate_rendered, parse_dicomweb_viewport, parse_frame_list
from server.render.viewport import Viewport, output_size
from server.render.voi_lut import Window
from tests.conftest import Noctis
from tests.render.archive import MemoryArchive
from tests.render.samples import sample, sample_bytes
from tests.support.synthetic import ct_series, dataset_bytes

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]

JPEG, PNG, WEBP = ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP


@pytest.mark.parametrize(
    ("accept", "several", "expected"),
    [
        ("", False, (JPEG, False)),
        ("", True, (JPEG, True)),
        ("*/*", False, (JPEG, False)),
        ("image/webp", False, (WEBP, False)),
        ("image/png, image/jpeg", False, (PNG, False)),
        ("image/png;q=0.5, image/webp", False, (WEBP, False)),
        ("image/webp;q=0, image/png", False, (PNG, False)),
        ('multipart/related; type="image/png"', True, (PNG, True)),
        ('multipart/related; type="image/png"', False, (PNG, True)),
        ("multipart/related", True, (JPEG, True)),
        ("image/jpeg, multipart/related; type=image/webp", True, (WEBP, True)),
        ("image/*", True, (JPEG, True)),
    ],
)
def test_negotiation(accept: str, several: bool, expected: tuple[ImageFormat, bool]) -> None:
    assert negotiate_rendered(accept, several=several) == expected


@pytest.mark.parametrize(
    ("accept", "several"),
    [
        ("text/html", False),
        ("image/jpeg", True),
        ('multipart/related; type="image/gif"', True),
        ("image/jpeg;q=0", False),
    ],
)
def test_negotiation_refusals(accept: str, several: bool) -> None:
    with pytest.raises(RenderError) as caught:
        negotiate_rendered(accept, several=several)
    assert caught.value.code == NOT_ACCEPTABLE


def test_six_value_viewport_names_a_source_region() -> None:
    default = Viewport()
    assert parse_dicomweb_viewport("64,32", default) == Viewport(canvas=(64, 32))
    assert parse_dicomweb_viewport("64,32,10,20,30,40", default) == Viewport(
        canvas=(64, 32), region=(10, 20, 30, 40)
    )
    assert parse_dicomweb_viewport("64,32,,,-30,", default).region == (0, 0, -30, None)
    for bad in ("64,32,1", "64,32,a,0,1,1", "64,32,0,0,0,10", "64,32,-1,0,5,5"):
        with pytest.raises(RenderError) as caught:
            parse_dicomweb_viewport(bad, default)
        assert caught.value.code == INVALID_VIEWPORT, bad


def test_frame_lists_are_bounded() -> None:
    assert parse_frame_list("1,3, 2", 10) == [0, 2, 1]
    with pytest.raises(RenderError) as caught:
        parse_frame_list(",".join(["1"] * 11), 10)
    assert caught.value.code == TOO_LARGE


def _gradient_frame() -> tuple[DecodedFrame, np.ndarray]:
    """A 64² synthetic CT slice and its display pixels under a wide window, full frame."""
    decoded = decode_bytes(dataset_bytes(ct_series(1, rows=64, cols=64)[0]))
    window = Window(0.0, 4000.0)
    full = render_image(decoded, window, Viewport())
    return decoded, full


def test_a_source_region_at_its_own_size_is_the_cut_of_the_full_image() -> None:
    decoded, full = _gradient_frame()
    window = Window(0.0, 4000.0)
    region = Viewport(canvas=(30, 20), region=(10, 5, 30, 20))
    np.testing.assert_array_equal(render_image(decoded, window, region), full[5:25, 10:40])
    mirrored = Viewport(canvas=(30, 20), region=(40, 5, -30, 20))
    np.testing.assert_array_equal(
        render_image(decoded, window, mirrored), full[5:25, 10:40][:, ::-1]
    )
    to_edge = Viewport(region=(48, 60, None, None))
    assert output_size(64, 64, (1.0, 1.0), to_edge) == (16, 4)
    np.testing.assert_array_equal(render_image(decoded, window, to_edge), full[60:, 48:])
    zoomed = render_image(decoded, window, Viewport(canvas=(16, 16), region=(0, 0, 4, 4)))
    np.testing.assert_array_equal(zoomed, np.repeat(np.repeat(full[:4, :4], 4, 0), 4, 1))
    with pytest.raises(RenderError) as caught:
        render_image(decoded, window, Viewport(canvas=(8, 8), region=(60, 0, 8, 8)))
    assert caught.value.code == INVALID_VIEWPORT


def test_webp_is_lossless_on_request_and_lossy_otherwise() -> None:
    _, full = _gradient_frame()
    lossless = encode(full, Encoding(WEBP, lossless=True))
    assert lossless[8:16] == b"WEBPVP8L"
    back = cv2.imdecode(np.frombuffer(lossless, np.uint8), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(back, full)
    assert encode(full, Encoding(WEBP, quality=40))[8:16] == b"WEBPVP8 "


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def rendering(
    aiohttp_client: ClientFactory, settings: Settings
) -> tuple[Noctis, MemoryArchive, dict[str, str]]:
    archive = MemoryArchive(ct_series(3, rows=64, cols=64))
    mr = pydicom.dcmread(sample("emri_small.dcm"))
    archive.add(
        str(mr.SOPInstanceUID),
        str(mr.SeriesInstanceUID),
        sample_bytes("emri_small.dcm"),
        str(mr.StudyInstanceUID),
    )
    app = build_app(settings, AppOptions(bootstrap_admin=False))
    app[RENDER_ARCHIVE] = archive
    noctis = Noctis(app=app, client=await aiohttp_client(app))
    token = await noctis.token_for("reader")
    return noctis, archive, {"Authorization": f"Bearer {token}"}


async def _parts(response: object) -> list[tuple[str, bytes]]:
    reader = MultipartReader.from_response(response)  # type: ignore[arg-type]
    parts = []
    while (part := await reader.next()) is not None:
        parts.append((part.headers["Content-Type"], await part.read()))  # type: ignore[union-attr]
    return parts


def _image(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


async def test_multi_frame_instance_frames_series_and_study(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    mr = pydicom.dcmread(sample("emri_small.dcm"))
    study, series, sop = str(mr.StudyInstanceUID), str(mr.SeriesInstanceUID), str(mr.SOPInstanceUID)
    base = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    whole = await noctis.client.get(f"{base}/rendered", headers=auth)
    assert whole.status == 200
    assert whole.content_type == "multipart/related"
    assert 'type="image/jpeg"' in whole.headers["Content-Type"]
    parts = await _parts(whole)
    assert len(parts) == 10
    assert all(kind == "image/jpeg" and _image(data).shape == (64, 64) for kind, data in parts)
    tenth = await noctis.client.get(f"{base}/frames/10/rendered", headers=auth)
    assert tenth.content_type == "image/jpeg"
    assert await tenth.read() == parts[9][1]
    assert parts[9][1] != parts[0][1]
    listed = await noctis.client.get(
        f"{base}/frames/3,1/rendered",
        headers={**auth, "Accept": 'multipart/related; type="image/png"'},
    )
    assert listed.status == 200
    pngs = await _parts(listed)
    assert [kind for kind, _ in pngs] == ["image/png", "image/png"]
    single = await noctis.client.get(
        f"{base}/frames/1/rendered?window=100,200", headers={**auth, "Accept": "image/png"}
    )
    assert _image(pngs[1][1]).tolist() != _image(pngs[0][1]).tolist()
    assert single.content_type == "image/png"
    first_only = await noctis.client.get(
        f"{base}/rendered", headers={**auth, "Accept": "image/jpeg"}
    )
    assert first_only.content_type == "image/jpeg"
    refused = await noctis.client.get(
        f"{base}/frames/1,2/rendered", headers={**auth, "Accept": "image/jpeg"}
    )
    assert refused.status == 406
    again = await noctis.client.get(
        f"{base}/rendered", headers={**auth, "If-None-Match": whole.headers["ETag"]}
    )
    assert again.status == 304

    ct_series_uid, ct_members = next(iter(archive.series.items()))
    ct_study = archive.studies[ct_members[0]]
    series_whole = await noctis.client.get(
        f"/dicom-web/studies/{ct_study}/series/{ct_series_uid}/rendered?viewport=32,32",
        headers=auth,
    )
    assert [(_image(d).shape) for _, d in await _parts(series_whole)] == [(32, 32)] * 3
    study_whole = await noctis.client.get(f"/dicom-web/studies/{ct_study}/rendered", headers=auth)
    assert len(await _parts(study_whole)) == 3
    wrong_study = await noctis.client.get(
        f"/dicom-web/studies/{study}/series/{ct_series_uid}/rendered", headers=auth
    )
    assert wrong_study.status == 404
    unknown = await noctis.client.get("/dicom-web/studies/9.9/rendered", headers=auth)
    assert unknown.status == 404


async def test_webp_and_source_region_over_http(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, archive, auth = rendering
    ct_series_uid, members = next(iter(archive.series.items()))
    study, sop = archive.studies[members[0]], members[0]
    base = f"/dicom-web/studies/{study}/series/{ct_series_uid}/instances/{sop}"
    webp = await noctis.client.get(
        f"{base}/rendered?quality=60", headers={**auth, "Accept": "image/webp"}
    )
    assert webp.content_type == "image/webp"
    assert _image(await webp.read()).shape[:2] == (64, 64)
    full = _image(
        await (
            await noctis.client.get(f"{base}/rendered", headers={**auth, "Accept": "image/png"})
        ).read()
    )
    cut = await noctis.client.get(
        f"{base}/rendered?viewport=16,8,8,4,16,8", headers={**auth, "Accept": "image/png"}
    )
    np.testing.assert_array_equal(_image(await cut.read()), full[4:12, 8:24])
    outside = await noctis.client.get(f"{base}/rendered?viewport=16,8,60,0,16,8", headers=auth)
    assert outside.status == 400
    api = await noctis.client.get(f"/api/render/instances/{sop}/frames/1?format=webp", headers=auth)
    assert api.content_type == "image/webp"
    bad = await noctis.client.get(f"/api/render/instances/{sop}/frames/1?format=gif", headers=auth)
    assert (await bad.json())["error"]["code"] == "invalid_quality"


async def test_too_many_frames_in_one_answer_is_refused(
    rendering: tuple[Noctis, MemoryArchive, dict[str, str]],
) -> None:
    noctis, _, auth = rendering
    mr = pydicom.dcmread(sample("emri_small.dcm"))
    base = (
        f"/dicom-web/studies/{mr.StudyInstanceUID}/series/{mr.SeriesInstanceUID}"
        f"/instances/{mr.SOPInstanceUID}"
    )
    many = ",".join(["1"] * 513)
    response = await noctis.client.get(f"{base}/frames/{many}/rendered", headers=auth)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "too_large"

"""The render service with an in-memory archive of real DICOM bytes: sharing, latest-wins,
byte-bounded caches, prefetch and errors."""

import asyncio
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from server.render.errors import (
    FRAME_OUT_OF_RANGE,
    INVALID_WINDOW,
    NOT_FOUND,
    UNDECODABLE,
    RenderError,
)
from server.render.measure import Rectangle
from server.render.models import (
    MprRequest,
    Quality,
    RenderedFrame,
    RenderRequest,
    Superseded,
    TileRequest,
)
from server.render.mpr import Plane
from server.render.service import RenderService, RenderSettings
from server.render.viewport import Viewport
from server.render.voi_lut import Window
from tests.render.archive import MemoryArchive
from tests.render.samples import sample_bytes
from tests.support.synthetic import ct_series

ROWS = COLS = 64
FRAME_BYTES = ROWS * COLS * 2


@pytest.fixture
def datasets() -> list:  # type: ignore[type-arg]
    return ct_series(12, rows=ROWS, cols=COLS)


@pytest.fixture
def archive(datasets: list) -> MemoryArchive:  # type: ignore[type-arg]
    return MemoryArchive(datasets)


@pytest.fixture
async def service(archive: MemoryArchive) -> AsyncIterator[RenderService]:
    svc = RenderService(archive, RenderSettings(workers=2))
    yield svc
    await svc.close()


def uids(archive: MemoryArchive) -> list[str]:
    return next(iter(archive.series.values()))


def pixels(frame: RenderedFrame) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_UNCHANGED)


async def test_renders_a_frame_with_the_objects_window(
    service: RenderService, archive: MemoryArchive
) -> None:
    frame = await service.render(RenderRequest(uids(archive)[0], quality=Quality.LOSSLESS))
    assert frame.media_type == "image/png"
    assert (frame.width, frame.height) == (COLS, ROWS)
    assert frame.window == Window(40.0, 400.0)
    image = pixels(frame)
    assert image[32, 32] == 128
    assert image[ROWS - 1, 0] == 0


async def test_identical_concurrent_requests_render_once(
    service: RenderService, archive: MemoryArchive
) -> None:
    request = RenderRequest(uids(archive)[3], window=Window(50, 350))
    results = await asyncio.gather(*(service.render(request) for _ in range(20)))
    assert service.renders == 1
    assert service.decodes == 1
    assert archive.reads[request.sop_instance_uid] == 1
    assert all(r is results[0] for r in results)
    again = await service.render(request)
    assert again is results[0]
    assert service.renders == 1


async def test_different_windows_share_one_decode(
    service: RenderService, archive: MemoryArchive
) -> None:
    uid = uids(archive)[0]
    windows = [Window(40, 400), Window(-600, 1500), Window(400, 1800)]
    results = await asyncio.gather(*(service.render(RenderRequest(uid, window=w)) for w in windows))
    assert service.decodes == 1
    assert service.renders == 3
    assert len({r.etag for r in results}) == 3


async def test_latest_request_wins_for_a_viewer(
    service: RenderService, archive: MemoryArchive
) -> None:
    first, second, third, fourth = uids(archive)[:4]
    gate = archive.hold(first)
    running = asyncio.create_task(service.render_for_viewer("v1", RenderRequest(first)))
    await archive.asked[first].wait()
    queued = [
        asyncio.create_task(service.render_for_viewer("v1", RenderRequest(uid)))
        for uid in (second, third, fourth)
    ]
    await asyncio.sleep(0)
    gate.set()
    results = [await running] + [await task for task in queued]
    assert isinstance(results[0], RenderedFrame)
    assert results[1] == Superseded(RenderRequest(second))
    assert results[2] == Superseded(RenderRequest(third))
    assert isinstance(results[3], RenderedFrame)
    assert archive.reads[second] == archive.reads[third] == 0
    assert service.renders == 2


async def test_viewers_do_not_supersede_each_other(
    service: RenderService, archive: MemoryArchive
) -> None:
    a, b = uids(archive)[:2]
    gate = archive.hold(a)
    first = asyncio.create_task(service.render_for_viewer("v1", RenderRequest(a)))
    await archive.asked[a].wait()
    other = await service.render_for_viewer("v2", RenderRequest(b))
    assert isinstance(other, RenderedFrame)
    gate.set()
    assert isinstance(await first, RenderedFrame)


async def test_forgetting_a_viewer_answers_its_queued_request(
    service: RenderService, archive: MemoryArchive
) -> None:
    a, b = uids(archive)[:2]
    gate = archive.hold(a)
    running = asyncio.create_task(service.render_for_viewer("v1", RenderRequest(a)))
    await archive.asked[a].wait()
    queued = asyncio.create_task(service.render_for_viewer("v1", RenderRequest(b)))
    await asyncio.sleep(0)
    service.forget_viewer("v1")
    assert isinstance(await queued, Superseded)
    gate.set()
    assert isinstance(await running, RenderedFrame)


async def test_caches_stay_within_their_byte_bounds(archive: MemoryArchive) -> None:
    settings = RenderSettings(
        workers=2, decoded_cache_bytes=3 * FRAME_BYTES, encoded_cache_bytes=6000
    )
    service = RenderService(archive, settings)
    try:
        for uid in uids(archive):
            await service.render(RenderRequest(uid, quality=Quality.LOSSLESS))
            assert service.decoded.nbytes <= settings.decoded_cache_bytes
            assert service.encoded.nbytes <= settings.encoded_cache_bytes
        assert len(service.decoded) == 3
        assert (uids(archive)[-1], 0) in service.decoded
        assert (uids(archive)[0], 0) not in service.decoded
    finally:
        await service.close()


async def test_interactive_quality_is_smaller_and_capped(archive: MemoryArchive) -> None:
    service = RenderService(archive, RenderSettings(workers=1, interactive_max_side=32))
    try:
        uid = uids(archive)[0]
        viewport = Viewport(canvas=(128, 64))
        final = await service.render(RenderRequest(uid, viewport=viewport))
        quick = await service.render(
            RenderRequest(uid, viewport=viewport, quality=Quality.INTERACTIVE)
        )
        assert (final.width, final.height) == (128, 64)
        assert (quick.width, quick.height) == (32, 16)
        assert len(quick.data) < len(final.data)
    finally:
        await service.close()


async def test_scrolling_a_series_decodes_the_neighbours_ahead(
    service: RenderService, archive: MemoryArchive
) -> None:
    series, members = next(iter(archive.series.items()))
    result = await service.render_for_viewer(
        "v1", RenderRequest(members[5]), series_instance_uid=series
    )
    assert isinstance(result, RenderedFrame)
    await service.wait_idle()
    for neighbour in (3, 4, 6, 7):
        assert (members[neighbour], 0) in service.decoded
    assert (members[8], 0) not in service.decoded


async def test_bad_requests_fail_clearly_and_the_service_keeps_serving(
    service: RenderService, archive: MemoryArchive
) -> None:
    uid = uids(archive)[0]
    archive.add("1.2.3.999", "1.2.3.998", b"DICM but not really" * 10)
    cases = [
        (RenderRequest("1.2.3.404"), NOT_FOUND),
        (RenderRequest(uid, frame=1), FRAME_OUT_OF_RANGE),
        (RenderRequest(uid, preset="nonsense"), INVALID_WINDOW),
        (RenderRequest("1.2.3.999"), UNDECODABLE),
    ]
    for request, code in cases:
        outcomes = await asyncio.gather(
            service.render(request), service.render(request), return_exceptions=True
        )
        assert all(isinstance(o, RenderError) and o.code == code for o in outcomes)
        assert request not in service.encoded
    assert isinstance(await service.render(RenderRequest(uid)), RenderedFrame)


async def test_tiles_and_mpr_through_the_service(
    service: RenderService, archive: MemoryArchive
) -> None:
    series, members = next(iter(archive.series.items()))
    tile = await service.render_tile(TileRequest(members[0], 0, 0, 0, 0))
    assert (tile.width, tile.height) == (COLS, ROWS)
    coronal = await service.render_mpr(MprRequest(series, Plane.CORONAL, 32))
    # 12 slices of 1.25 mm against 0.7 mm pixels: 12 * 1.25 / 0.7 ≈ 21 rows, 64 columns
    assert (coronal.width, coronal.height) == (COLS, 21)
    again = await service.render_mpr(MprRequest(series, Plane.CORONAL, 32))
    assert again is coronal
    with pytest.raises(RenderError) as caught:
        await service.render_mpr(MprRequest("1.2.3.404", Plane.AXIAL, 0))
    assert caught.value.code == NOT_FOUND


async def test_roi_statistics_through_the_service(
    service: RenderService, archive: MemoryArchive
) -> None:
    stats = await service.roi_stats(uids(archive)[0], 0, Rectangle((40, 40), (48, 48)))
    assert (stats.mean, stats.std, stats.value_unit) == (40.0, 0.0, "HU")


async def test_closing_the_service_releases_waiting_viewers(archive: MemoryArchive) -> None:
    service = RenderService(archive, RenderSettings(workers=1))
    first, second = uids(archive)[:2]
    archive.hold(first)
    running = asyncio.create_task(service.render_for_viewer("v1", RenderRequest(first)))
    await archive.asked[first].wait()
    queued = asyncio.create_task(service.render_for_viewer("v1", RenderRequest(second)))
    await asyncio.sleep(0)
    await service.close()
    assert isinstance(await queued, Superseded)
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_newer_scroll_position_cancels_the_older_prefetch(
    service: RenderService, archive: MemoryArchive
) -> None:
    series, members = next(iter(archive.series.items()))
    gate = archive.hold(members[1])
    await service.render_for_viewer("v1", RenderRequest(members[0]), series_instance_uid=series)
    await archive.asked[members[1]].wait()
    await service.render_for_viewer("v1", RenderRequest(members[9]), series_instance_uid=series)
    gate.set()
    await service.wait_idle()
    assert (members[2], 0) not in service.decoded
    for neighbour in (7, 8, 10, 11):
        assert (members[neighbour], 0) in service.decoded


async def test_scrolling_a_multi_frame_instance_decodes_the_neighbouring_frames() -> None:
    archive = MemoryArchive([])
    archive.add("1.2.3.4", "1.2.3", sample_bytes("emri_small.dcm"))
    service = RenderService(archive, RenderSettings(workers=1))
    try:
        result = await service.render_for_viewer("v1", RenderRequest("1.2.3.4", frame=5))
        assert isinstance(result, RenderedFrame)
        await service.wait_idle()
        assert {key[1] for key in service.decoded} == {3, 4, 5, 6, 7}
    finally:
        await service.close()

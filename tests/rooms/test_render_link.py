"""Rooms over the real render service: frames and measured values for the room's own study."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.http.errors import ApiError
from server.render.service import RenderService
from server.rooms.frames import FrameRequest
from server.rooms.measure import Shape, measurement_for
from server.rooms.render_link import ServiceMeasurer, ServiceRenderer, StudyInstances
from server.store.database import Store
from tests.render.archive import MemoryArchive
from tests.support.synthetic import AIR_HU, BONE_HU, TISSUE_HU, ct_series

STUDY = "1.2.826.0.1.3680043.8.498.1"
OTHER = "1.2.826.0.1.3680043.8.498.2"


@pytest.fixture
async def service(store: Store) -> AsyncIterator[tuple[RenderService, StudyInstances, str]]:
    series = ct_series(2, 64, 64, pixel_spacing=(0.7, 0.7), study_instance_uid=STUDY)
    render = RenderService(MemoryArchive(series))
    sop = str(series[0].SOPInstanceUID)
    await store["dicom_instances"].insert_one(
        {"_id": sop, "study_uid": STUDY, "series_uid": str(series[0].SeriesInstanceUID)}
    )
    try:
        yield render, StudyInstances(store), sop
    finally:
        await render.close()


async def test_frames_come_from_the_render_service(
    service: tuple[RenderService, StudyInstances, str],
) -> None:
    render, instances, sop = service
    renderer = ServiceRenderer(render, instances)
    viewport = {"instance_uid": sop, "frame": 0, "canvas": [128, 96], "window_center": 40}
    frame = await renderer.render(FrameRequest.from_viewport(STUDY, viewport))
    assert frame.data[:2] == b"\xff\xd8"
    assert (frame.width, frame.height, frame.content_type) == (128, 96, "image/jpeg")
    with pytest.raises(ApiError) as caught:
        await renderer.render(FrameRequest.from_viewport(OTHER, viewport))
    assert caught.value.code == "not_found"


async def test_values_are_measured_in_real_units(
    service: tuple[RenderService, StudyInstances, str],
) -> None:
    render, instances, sop = service
    measurer = ServiceMeasurer(render, instances)

    def shape(kind: str, points: tuple[tuple[float, float], ...], study: str = STUDY) -> Shape:
        return Shape(study, kind, sop, 0, points)

    length = await measurement_for(measurer, shape("length", ((0, 0), (30, 40))))
    assert length["status"] == "measured"
    assert length["values"]["length"] == pytest.approx(35.0)
    assert length["values"]["unit"] == "mm"
    angle = await measurement_for(measurer, shape("angle", ((10, 0), (0, 0), (0, 10))))
    assert angle["values"]["angle"] == pytest.approx(90.0)
    box = await measurement_for(measurer, shape("rectangle", ((10, 10), (19, 19))))
    assert box["values"]["pixels"] == 100
    assert box["values"]["value_unit"] == "HU"
    assert box["values"]["area"] == pytest.approx(81 * 0.49)
    foreign = await measurement_for(measurer, shape("length", ((0, 0), (1, 1)), study=OTHER))
    assert foreign["status"] == "not_measured"
    degenerate = await measurement_for(measurer, shape("angle", ((0, 0), (0, 0), (1, 1))))
    assert degenerate["status"] == "not_measured"
    assert "reason" in degenerate


async def test_a_probe_reads_the_known_pixel_value_in_hu(
    service: tuple[RenderService, StudyInstances, str],
) -> None:
    """The synthetic slice is air (-1000 HU) around a 40 HU disc with a 1000 HU bone square at
    rows/columns 24..31 and a marker pixel (0 HU on slice 0) at row 0, column 0."""
    render, instances, sop = service
    measurer = ServiceMeasurer(render, instances)

    async def probe(x: float, y: float) -> dict[str, Any]:
        return await measurement_for(measurer, Shape(STUDY, "probe", sop, 0, ((x, y),)))

    bone = await probe(27.6, 25.2)  # the nearest pixel centre is column 28, row 25
    assert bone["status"] == "measured"
    assert bone["values"]["value"] == BONE_HU
    assert bone["values"]["value_unit"] == "HU"
    assert bone["values"]["pixel"] == [28, 25]
    # Image Position (-179, -179, 0) plus column x 0.7 mm along x and row x 0.7 mm along y.
    where = [-179 + 28 * 0.7, -179 + 25 * 0.7, 0]
    assert bone["values"]["patient_position"] == pytest.approx(where)
    assert (await probe(40, 40))["values"]["value"] == TISSUE_HU
    assert (await probe(63, 63))["values"]["value"] == AIR_HU
    assert (await probe(0, 0))["values"]["value"] == 0  # the slice marker
    outside = await probe(64.6, 10)
    assert outside["status"] == "not_measured"
    assert "outside" in outside["reason"]

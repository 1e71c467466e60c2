"""The render-backed measurer the rooms use: values in real units from the stored pixels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from server.bridges import RenderMeasurer
from server.http.render_routes import RENDER_SERVICE
from server.render.service import RenderService
from server.rooms.measure import Shape
from tests.render.archive import MemoryArchive
from tests.support.synthetic import BONE_HU, TISSUE_HU, ct_series

SIZE = 64


@pytest.fixture
async def measured() -> AsyncIterator[tuple[RenderMeasurer, str]]:
    datasets = ct_series(1, rows=SIZE, cols=SIZE, pixel_spacing=(0.5, 0.8))
    service = RenderService(MemoryArchive(datasets))
    app = web.Application()
    app[RENDER_SERVICE] = service
    yield RenderMeasurer(app), str(datasets[0].SOPInstanceUID)
    await service.close()


def shape(sop: str, kind: str, *points: tuple[float, float]) -> Shape:
    return Shape(study_uid="1.2", kind=kind, instance_uid=sop, frame=0, points=points)


async def test_length_uses_row_and_column_spacing(measured: tuple[RenderMeasurer, str]) -> None:
    measurer, sop = measured
    # 3 columns (0.8 mm each) across and 4 rows (0.5 mm each) down: hypot(2.4, 2.0) mm.
    result = await measurer.measure(shape(sop, "length", (10, 10), (13, 14)))
    assert result == {"status": "measured", "values": {"length_mm": 3.124}}


async def test_angle_and_cobb_in_degrees(measured: tuple[RenderMeasurer, str]) -> None:
    measurer, sop = measured
    right = await measurer.measure(shape(sop, "angle", (20, 10), (10, 10), (10, 20)))
    assert right["values"] == {"angle_deg": 90.0}
    cobb = await measurer.measure(shape(sop, "cobb", (0, 0), (10, 0), (0, 5), (10, 5)))
    assert cobb["values"] == {"cobb_deg": 0.0}


async def test_rectangle_roi_statistics_in_hu(measured: tuple[RenderMeasurer, str]) -> None:
    measurer, sop = measured
    # Inside the phantom's bone square (HU 1000): rows/4 + rows/8 .. + cols/8 (24..32).
    bone = await measurer.measure(shape(sop, "rectangle", (25, 25), (30, 30)))
    assert bone["status"] == "measured"
    assert bone["values"]["mean"] == BONE_HU
    assert bone["values"]["std"] == 0
    assert bone["values"]["area_mm2"] == pytest.approx(5 * 5 * 0.4)
    tissue = await measurer.measure(shape(sop, "ellipse", (40, 40), (46, 46)))
    assert tissue["values"]["mean"] == TISSUE_HU


async def test_unmeasurable_shapes_say_why(measured: tuple[RenderMeasurer, str]) -> None:
    measurer, sop = measured
    short = await measurer.measure(shape(sop, "angle", (1, 1), (2, 2)))
    assert short == {"status": "not_measured", "reason": "angle needs 3 points"}
    unknown = await measurer.measure(shape("1.2.3.999", "length", (1, 1), (2, 2)))
    assert unknown["status"] == "not_measured"
    assert unknown["reason"]

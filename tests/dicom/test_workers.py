"""Gateway worker processes share the DICOM port and the ingest path."""

from __future__ import annotations

import asyncio

from server.appkeys import STORE
from server.dicom.index import INSTANCES, STUDIES
from server.dicom.keys import GATEWAY
from tests.dicom.conftest import ArchiveFactory
from tests.dicom.scu import in_thread, store
from tests.dicom.synthetic import ct_series


async def test_workers_alone_store_index_and_report(archive_factory: ArchiveFactory) -> None:
    archive = await archive_factory(stable_after_s=0.3, dicom_workers=2)
    # Stop the server process' own listener: from now on only the workers can answer.
    await asyncio.to_thread(archive.app[GATEWAY].stop)
    series = ct_series(6)
    first, second = series.datasets[:3], series.datasets[3:]
    results = await asyncio.gather(
        in_thread(store, archive.port, first), in_thread(store, archive.port, second)
    )
    assert results == [[0, 0, 0], [0, 0, 0]]
    await archive.wait_for("dicom.association.closed", 2)
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 6
    study = await archive.app[STORE][STUDIES].find_one({"_id": series.study_uid})
    assert study is not None
    assert (study["instances"], study["series"]) == (6, 1)
    stable = await archive.wait_for("dicom.study.stable")
    assert stable[0].data["received"] == 6
    assert archive.topics().count("dicom.instance.stored") == 6
    assert archive.topics().count("dicom.association.closed") == 2

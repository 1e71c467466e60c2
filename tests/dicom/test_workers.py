"""Gateway worker processes take storage associations handed over by the server process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from server.appkeys import STORE
from server.dicom.index import INSTANCES, STUDIES
from server.dicom.keys import GATEWAY_WORKERS
from server.dicom.workers import Workers
from tests.dicom.conftest import ArchiveFactory
from tests.dicom.scu import associate, in_thread, make_ae, store
from tests.dicom.synthetic import ct_series


def _open_storage(port: int, first: Dataset) -> Association:
    ae = make_ae()
    ae.add_requested_context(str(first.SOPClassUID), str(first.file_meta.TransferSyntaxUID))
    assoc = associate(ae, port)
    assert assoc.is_established
    return assoc


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Worker counts change when a byte from the worker arrives: poll them, bounded."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_workers_store_index_and_report_with_the_server_process(
    archive_factory: ArchiveFactory,
) -> None:
    archive = await archive_factory(stable_after_s=0.3, dicom_workers=2)
    series = ct_series(6)
    first, second = series.datasets[:3], series.datasets[3:]
    results = await asyncio.gather(
        in_thread(store, archive.port, first), in_thread(store, archive.port, second)
    )
    assert results == [[0, 0, 0], [0, 0, 0]]
    assert archive.app[GATEWAY_WORKERS].handed == 2
    await archive.wait_for("dicom.association.closed", 2)
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 6
    study = await archive.app[STORE][STUDIES].find_one({"_id": series.study_uid})
    assert study is not None
    assert (study["instances"], study["series"]) == (6, 1)
    stable = await archive.wait_for("dicom.study.stable")
    assert stable[0].data["received"] == 6
    assert archive.topics().count("dicom.instance.stored") == 6
    workers: Workers = archive.app[GATEWAY_WORKERS]
    await _until(lambda: workers.active() == [0, 0])


async def test_each_association_goes_to_the_least_busy_worker(
    archive_factory: ArchiveFactory,
) -> None:
    archive = await archive_factory(dicom_workers=2)
    workers = archive.app[GATEWAY_WORKERS]
    series = ct_series(2)
    one = await in_thread(_open_storage, archive.port, series.datasets[0])
    two = await in_thread(_open_storage, archive.port, series.datasets[1])
    try:
        assert workers.active() == [1, 1]
        statuses = await asyncio.gather(
            in_thread(one.send_c_store, series.datasets[0]),
            in_thread(two.send_c_store, series.datasets[1]),
        )
        assert [int(s.Status) for s in statuses] == [0, 0]
    finally:
        await in_thread(one.release)
        await in_thread(two.release)
    await _until(lambda: workers.active() == [0, 0])
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 2


async def test_with_its_workers_gone_the_server_process_stores_itself(
    archive_factory: ArchiveFactory,
) -> None:
    archive = await archive_factory(dicom_workers=1)
    workers = archive.app[GATEWAY_WORKERS]
    for worker in workers._workers:
        worker.process.kill()
        await worker.process.wait()
    series = ct_series(3)
    assert await in_thread(store, archive.port, series.datasets) == [0, 0, 0]
    assert workers.handed == 0
    assert await archive.app[STORE][INSTANCES].count_documents({}) == 3

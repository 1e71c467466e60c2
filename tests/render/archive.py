"""An in-memory archive implementing the render service's `InstanceLoader` with real bytes."""

import asyncio
from collections import Counter

from pydicom.dataset import Dataset

from tests.support.synthetic import dataset_bytes


class MemoryArchive:
    def __init__(self, datasets: list[Dataset]) -> None:
        self.files: dict[str, bytes] = {}
        self.series: dict[str, list[str]] = {}
        self.reads: Counter[str] = Counter()
        self.gates: dict[str, asyncio.Event] = {}
        self.asked: dict[str, asyncio.Event] = {}
        for ds in datasets:
            self.add(str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), dataset_bytes(ds))

    def add(self, sop_instance_uid: str, series_instance_uid: str, data: bytes) -> None:
        self.files[sop_instance_uid] = data
        self.series.setdefault(series_instance_uid, []).append(sop_instance_uid)

    def hold(self, sop_instance_uid: str) -> asyncio.Event:
        """Make reads of one instance wait until the returned event is set."""
        self.asked[sop_instance_uid] = asyncio.Event()
        gate = self.gates[sop_instance_uid] = asyncio.Event()
        return gate

    async def instance_bytes(self, sop_instance_uid: str) -> bytes:
        self.reads[sop_instance_uid] += 1
        if sop_instance_uid in self.gates:
            self.asked[sop_instance_uid].set()
            await self.gates[sop_instance_uid].wait()
        await asyncio.sleep(0)
        return self.files[sop_instance_uid]

    async def series_instance_uids(self, series_instance_uid: str) -> list[str]:
        await asyncio.sleep(0)
        return list(self.series[series_instance_uid])

"""An in-memory archive with real DICOM bytes, implementing the render routes' `RenderArchive`
(and so the service's `InstanceLoader`); every instance belongs to one facility."""

import asyncio
from collections import Counter

from pydicom.dataset import Dataset

from tests.support.synthetic import dataset_bytes


class MemoryArchive:
    def __init__(self, datasets: list[Dataset], facility: str = "main") -> None:
        self.facility = facility
        self.facilities: dict[str, str] = {}
        self.files: dict[str, bytes] = {}
        self.series: dict[str, list[str]] = {}
        self.studies: dict[str, str] = {}
        self.reads: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()
        self.gates: dict[str, asyncio.Event] = {}
        self.asked: dict[str, asyncio.Event] = {}
        for ds in datasets:
            self.add(
                str(ds.SOPInstanceUID),
                str(ds.SeriesInstanceUID),
                dataset_bytes(ds),
                str(ds.StudyInstanceUID),
            )

    def add(
        self, sop_instance_uid: str, series_instance_uid: str, data: bytes, study: str = ""
    ) -> None:
        self.files[sop_instance_uid] = data
        self.studies[sop_instance_uid] = study
        self.facilities[sop_instance_uid] = self.facility
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

    async def instance(self, sop_instance_uid: str, facility: str | None = None) -> object:
        self.lookups[sop_instance_uid] += 1
        await asyncio.sleep(0)
        if facility not in (None, self.facilities[sop_instance_uid]):
            raise KeyError(sop_instance_uid)
        return sop_instance_uid

    async def series_instance_uids(
        self, series_instance_uid: str, facility: str | None = None
    ) -> list[str]:
        await asyncio.sleep(0)
        members = self.series[series_instance_uid]
        visible = [uid for uid in members if facility in (None, self.facilities[uid])]
        if not visible:
            raise KeyError(series_instance_uid)
        return visible

    async def study_instance_uids(
        self, study_instance_uid: str, facility: str | None = None
    ) -> list[str]:
        await asyncio.sleep(0)
        visible = [
            uid
            for members in self.series.values()
            for uid in members
            if self.studies[uid] == study_instance_uid and facility in (None, self.facilities[uid])
        ]
        if not visible:
            raise KeyError(study_instance_uid)
        return visible

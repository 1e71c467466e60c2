"""The gateway tests' series: small CT slices whose every stored value can be checked.

Stored pixel (r, c) of the slice with Instance Number k holds ``(k * 7 + r + c) % 4096``, so a
reader can verify any value it gets back without keeping the sent datasets. The slices come in
descending Instance Number order, the way some modalities send them, so that the archive's
ordering is exercised. The datasets themselves are built by the one generator,
`tests.support.synthetic.ct_series`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from tests.support.synthetic import INTERCEPT, dataset_bytes
from tests.support.synthetic import ct_series as synthetic_ct_series

NOCTIS_TEST_ROOT = "1.2.826.0.1.3680043.10.1234."


@dataclass(frozen=True)
class Series:
    study_uid: str
    series_uid: str
    datasets: list[Dataset]

    def files(self) -> list[bytes]:
        return [to_bytes(ds) for ds in self.datasets]


def pixels(instance_number: int, rows: int, columns: int) -> npt.NDArray[np.uint16]:
    r, c = np.indices((rows, columns))
    return ((instance_number * 7 + r + c) % 4096).astype(np.uint16)


def ct_series(
    count: int = 3,
    rows: int = 16,
    columns: int = 16,
    patient_name: str = "Doe^Jane",
    patient_id: str = "P001",
    study_date: str = "20240115",
    accession: str = "ACC001",
    study_uid: str | None = None,
    modality: str = "CT",
) -> Series:
    def hu(index: int, rows: int, columns: int) -> npt.NDArray[np.int16]:
        return (pixels(index + 1, rows, columns).astype(np.int32) + INTERCEPT).astype(np.int16)

    datasets = synthetic_ct_series(
        count,
        rows,
        columns,
        pixel_spacing=(0.5, 0.5),
        slice_spacing=1.0,
        origin=(0.0, 0.0, 1.0),
        hu=hu,
        patient_id=patient_id,
        patient_name=patient_name,
        study_instance_uid=study_uid,
        accession_number=accession,
        study_date=study_date,
        study_description="CT CHEST",
        series_description="AXIAL",
        modality=modality,
        uid_prefix=NOCTIS_TEST_ROOT,
    )
    datasets.reverse()
    return Series(datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID, datasets)


def to_bytes(ds: Dataset) -> bytes:
    return dataset_bytes(ds)

"""Studies for the browser tests: slices whose pixels a test can reason about.

Each slice is a CT phantom in HU: air outside a water-like disc (40 HU) whose radius grows with
the slice number, and a bone square (1000 HU) in the disc. A different slice therefore shows
different pixels, and a bone window shows the disc darker than a soft-tissue window does. The
datasets are built by the one generator, `tests.support.synthetic.ct_series`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from tests.support.synthetic import AIR_HU, BONE_HU, TISSUE_HU, ct_series

PIXEL_SPACING_MM = 0.5
ROOT = "1.2.826.0.1.3680043.10.1234."


@dataclass
class Study:
    study_uid: str
    series_uid: str
    accession: str
    patient_name: str
    datasets: list[Dataset]


def phantom(index: int, rows: int, columns: int) -> npt.NDArray[np.int16]:
    size = columns
    ys, xs = np.mgrid[0:rows, 0:columns]
    hu = np.full((rows, columns), AIR_HU, dtype=np.int16)
    radius = size * (0.2 + 0.04 * index)
    hu[(xs - size / 2) ** 2 + (ys - size / 2) ** 2 <= radius**2] = TISSUE_HU
    side = size // 8
    centre = slice(size // 2 - side // 2, size // 2 + side // 2)
    hu[centre, centre] = BONE_HU
    return hu


def ct_study(patient_name: str, slices: int = 5, size: int = 128) -> Study:
    accession = f"B{uuid.uuid4().hex[:10]}"
    datasets = ct_series(
        slices,
        size,
        size,
        pixel_spacing=(PIXEL_SPACING_MM, PIXEL_SPACING_MM),
        slice_spacing=1.0,
        origin=(0.0, 0.0, 0.0),
        hu=phantom,
        patient_id=f"P{uuid.uuid4().hex[:8]}",
        patient_name=patient_name,
        accession_number=accession,
        study_date="20261127",
        study_description="CT CHEST",
        series_description="AXIAL",
        uid_prefix=ROOT,
    )
    first = datasets[0]
    return Study(first.StudyInstanceUID, first.SeriesInstanceUID, accession, patient_name, datasets)

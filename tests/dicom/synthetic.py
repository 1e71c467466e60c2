"""A small synthetic CT series with known pixel values, written with pydicom.

Pixel (r, c) of slice k holds ``(k * 7 + r + c) % 4096 - 1024`` (stored with RescaleIntercept
-1024), so a reader can check any value it gets back.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

NOCTIS_TEST_ROOT = "1.2.826.0.1.3680043.10.1234."


@dataclass(frozen=True)
class Series:
    study_uid: str
    series_uid: str
    datasets: list[Dataset]

    def files(self) -> list[bytes]:
        return [to_bytes(ds) for ds in self.datasets]


def pixels(index: int, rows: int, columns: int) -> np.ndarray:
    r, c = np.indices((rows, columns))
    return ((index * 7 + r + c) % 4096).astype(np.uint16)


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
    study_uid = study_uid or generate_uid(prefix=NOCTIS_TEST_ROOT)
    series_uid = generate_uid(prefix=NOCTIS_TEST_ROOT)
    datasets = []
    for index in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = generate_uid(prefix=NOCTIS_TEST_ROOT)
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "F"
        ds.StudyDate = study_date
        ds.StudyTime = "101500"
        ds.AccessionNumber = accession
        ds.StudyID = "1"
        ds.StudyDescription = "CT CHEST"
        ds.ReferringPhysicianName = "Ref^Doctor"
        ds.Modality = modality
        ds.SeriesNumber = 1
        ds.SeriesDescription = "AXIAL"
        ds.InstanceNumber = count - index
        ds.ImagePositionPatient = [0, 0, float(count - index)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 1.0
        ds.Rows = rows
        ds.Columns = columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.PixelData = pixels(count - index, rows, columns).tobytes()
        datasets.append(ds)
    return Series(study_uid, series_uid, datasets)


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()

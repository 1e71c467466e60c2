"""Studies for the browser tests, written by pydicom with pixels a test can reason about.

Each slice is a CT phantom in HU: air outside a water-like disc (40 HU) whose radius grows with
the slice number, and a bone square (1000 HU) in the disc. A different slice therefore shows
different pixels, and a bone window shows the disc darker than a soft-tissue window does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PIXEL_SPACING_MM = 0.5
ROOT = "1.2.826.0.1.3680043.10.1234."


@dataclass
class Study:
    study_uid: str
    series_uid: str
    accession: str
    patient_name: str
    datasets: list[Dataset]


def phantom(index: int, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size]
    hu = np.full((size, size), -1000, dtype=np.int16)
    radius = size * (0.2 + 0.04 * index)
    hu[(xs - size / 2) ** 2 + (ys - size / 2) ** 2 <= radius**2] = 40
    side = size // 8
    hu[
        size // 2 - side // 2 : size // 2 + side // 2, size // 2 - side // 2 : size // 2 + side // 2
    ] = 1000
    return hu


def ct_study(patient_name: str, slices: int = 5, size: int = 128) -> Study:
    study_uid = generate_uid(prefix=ROOT)
    series_uid = generate_uid(prefix=ROOT)
    accession = f"B{uuid.uuid4().hex[:10]}"
    patient_id = f"P{uuid.uuid4().hex[:8]}"
    datasets = []
    for index in range(slices):
        sop_uid = generate_uid(prefix=ROOT)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
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
        ds.StudyDate = "20261127"
        ds.StudyTime = "101500"
        ds.AccessionNumber = accession
        ds.StudyID = "1"
        ds.StudyDescription = "CT CHEST"
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.SeriesDescription = "AXIAL"
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(index)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
        ds.SliceThickness = 1.0
        ds.Rows = size
        ds.Columns = size
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
        ds.PixelData = (phantom(index, size) + 1024).astype(np.uint16).tobytes()
        datasets.append(ds)
    return Study(study_uid, series_uid, accession, patient_name, datasets)

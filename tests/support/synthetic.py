"""Synthetic DICOM test data with known pixel values, written by pydicom (nothing downloaded).

`ct_series` builds a CT series whose Hounsfield values are known exactly, so tests can check
LUT output, ROI statistics and MPR against hand computation; `write_series` puts it on disk as
Part 10 files for gateways and archives. The phantom (in HU):

- air (-1000) outside a body disc of radius 0.4 x columns centred in the slice,
- water-like tissue (40) inside the disc,
- a bone square (1000) of side columns/8 centred at (rows/4 .. , columns/4 ..) inside the disc,
- a marker pixel at row 0, column `slice_index % columns` whose value is `slice_index`,
  so a test can tell which slice it is looking at.

Stored values are HU + 1024 as 12-bit unsigned (Rescale Intercept -1024, slope 1).
"""

from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    PYDICOM_ROOT_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

AIR_HU = -1000
TISSUE_HU = 40
BONE_HU = 1000
INTERCEPT = -1024

PixelFunction = Callable[[int, int, int], npt.NDArray[np.int16]]


def phantom_hu(index: int, rows: int, cols: int) -> npt.NDArray[np.int16]:
    """The default slice `index` in HU, as described in the module docstring."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    hu = np.full((rows, cols), AIR_HU, dtype=np.int16)
    radius = 0.4 * cols
    hu[(xs - (cols - 1) / 2) ** 2 + (ys - (rows - 1) / 2) ** 2 <= radius**2] = TISSUE_HU
    side = max(1, cols // 8)
    top, left = rows // 4 + rows // 8, cols // 4 + cols // 8
    hu[top : top + side, left : left + side] = BONE_HU
    hu[0, index % cols] = index
    return hu


def ct_series(
    n_slices: int,
    rows: int = 512,
    cols: int = 512,
    *,
    pixel_spacing: tuple[float, float] = (0.7, 0.7),
    slice_spacing: float = 1.25,
    slice_thickness: float | None = None,
    origin: tuple[float, float, float] = (-179.0, -179.0, 0.0),
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    positions: Sequence[tuple[float, float, float]] | None = None,
    window: tuple[float, float] | None = (40.0, 400.0),
    hu: PixelFunction = phantom_hu,
    patient_id: str = "SYNTH-001",
    patient_name: str = "Synthetic^Phantom",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    accession_number: str = "ACC0001",
    series_number: int = 1,
    study_date: str = "20260101",
    study_description: str = "Synthetic CT",
    series_description: str = "Synthetic phantom",
    modality: str = "CT",
    uid_prefix: str = PYDICOM_ROOT_UID,
) -> list[Dataset]:
    """`n_slices` CT slices stepping `slice_spacing` mm along the orientation's normal.

    `positions` overrides the computed Image Position (Patient) per slice, which is how tests
    make gaps or tilted stacks. `hu(index, rows, cols)` gives each slice's values in HU
    (-1024..3071). Datasets carry file meta and are ready for `dcmwrite` or a C-STORE.
    """
    study = study_instance_uid or generate_uid(prefix=uid_prefix)
    series = series_instance_uid or generate_uid(prefix=uid_prefix)
    frame_of_reference = generate_uid(prefix=uid_prefix)
    row_dir = np.array(orientation[:3], dtype=float)
    col_dir = np.array(orientation[3:], dtype=float)
    normal = np.cross(row_dir, col_dir)
    datasets = []
    for index in range(n_slices):
        if positions is not None:
            position = tuple(float(v) for v in positions[index])
        else:
            position = tuple(float(v) for v in np.array(origin) + normal * slice_spacing * index)
        values = hu(index, rows, cols).astype(np.int32) - INTERCEPT
        if values.min() < 0 or values.max() > 4095:
            raise ValueError("HU values must lie within -1024..3071 for 12-bit storage")
        ds = _ct_slice(study, series, frame_of_reference, index, rows, cols, uid_prefix)
        ds.PatientID = patient_id
        ds.PatientName = patient_name
        ds.AccessionNumber = accession_number
        ds.SeriesNumber = series_number
        ds.StudyDate = study_date
        ds.StudyDescription = study_description
        ds.SeriesDescription = series_description
        ds.Modality = modality
        ds.ImagePositionPatient = [f"{v:.6g}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6g}" for v in orientation]
        ds.SliceLocation = f"{float(np.dot(position, normal)):.6g}"
        ds.PixelSpacing = [f"{v:.6g}" for v in pixel_spacing]
        ds.SliceThickness = f"{slice_thickness if slice_thickness else slice_spacing:.6g}"
        if window is not None:
            ds.WindowCenter = f"{window[0]:.6g}"
            ds.WindowWidth = f"{window[1]:.6g}"
        ds.PixelData = values.astype("<u2").tobytes()
        datasets.append(ds)
    return datasets


def _ct_slice(
    study: str,
    series: str,
    frame_of_reference: str,
    index: int,
    rows: int,
    cols: int,
    uid_prefix: str,
) -> Dataset:
    sop_instance_uid = generate_uid(prefix=uid_prefix)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = str(INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def dataset_bytes(ds: Dataset) -> bytes:
    """The Part 10 file for `ds`, as an archive would return it."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_series(directory: Path | str, datasets: Sequence[Dataset]) -> list[Path]:
    """Write each dataset as `<SOPInstanceUID>.dcm` under `directory` (created if missing)."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = target / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

"""The signed report as a DICOM Basic Text SR, so PACS, RIS and viewers elsewhere see it.

Pure: a report and its study in, Part 10 bytes out. One SR per signed version, holding the whole
report so far (the original text and every addendum), in a series of its own within the study.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
# The one series per study that Noctis' reports go into: SeriesNumber is fixed so viewers list
# the report series last.
SERIES_NUMBER = 9000


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _text(concept: Dataset, text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([concept])
    item.TextValue = text
    return item


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def build_sr(
    study: Mapping[str, Any],
    versions: Sequence[Mapping[str, Any]],
    *,
    sop_instance_uid: str,
    series_instance_uid: str,
    facility_name: str,
) -> bytes:
    """Part 10 bytes of a Basic Text SR for the study's report up to the last of ``versions``."""
    last = versions[-1]
    signed = _dt(last["signed_at"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(BASIC_TEXT_SR)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = study["study_instance_uid"]
    ds.SeriesInstanceUID = series_instance_uid
    ds.Modality = "SR"
    ds.SeriesNumber = SERIES_NUMBER
    ds.InstanceNumber = int(last["version"])
    ds.SeriesDescription = "Radiology report"
    ds.PatientName = study["patient_name"]
    ds.PatientID = study["patient_id"]
    ds.PatientBirthDate = study.get("patient_birth_date") or ""
    ds.PatientSex = study.get("patient_sex") or ""
    ds.AccessionNumber = study["accession_number"]
    ds.ReferringPhysicianName = study.get("referring_physician") or ""
    study_time = _dt(study.get("arrived_at") or study["created_at"])
    ds.StudyDate = study_time.strftime("%Y%m%d")
    ds.StudyTime = study_time.strftime("%H%M%S")
    ds.StudyID = study["accession_number"][:16]
    ds.ContentDate = signed.strftime("%Y%m%d")
    ds.ContentTime = signed.strftime("%H%M%S")
    ds.InstanceCreationDate = ds.ContentDate
    ds.InstanceCreationTime = ds.ContentTime
    ds.Manufacturer = "Noctis"
    ds.InstitutionName = facility_name[:64]
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = last.get("signer_name") or last["signer"]
    observer.VerificationDateTime = signed.strftime("%Y%m%d%H%M%S")
    observer.VerifyingOrganization = facility_name[:64]
    observer.VerifyingObserverIdentificationCodeSequence = DicomSequence([])
    ds.VerifyingObserverSequence = DicomSequence([observer])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence(
        [_code("18748-4", "LN", "Diagnostic imaging report")]
    )
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2000"
    ds.ContentTemplateSequence = DicomSequence([template])
    items = []
    for version in versions:
        if version["kind"] == "addendum":
            concept = _code("55107-7", "LN", "Addendum")
        else:
            concept = _code("121071", "DCM", "Finding")
        items.append(_text(concept, version["text"]))
    ds.ContentSequence = DicomSequence(items)

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()

"""The fast DICOM JSON path gives exactly what pydicom's own conversion gives."""

from __future__ import annotations

import io
import warnings

import pytest
from pydicom import dcmread

from server.dicom.jsonmodel import dataset_json
from tests.dicom.samples import SAMPLES
from tests.dicom.synthetic import ct_series, to_bytes

# badVR.dcm holds a value pydicom itself cannot encode as JSON; parse refuses it anyway.
FILES = sorted(p.name for p in SAMPLES.glob("*.dcm") if p.name != "badVR.dcm")


def _both(raw: bytes) -> tuple[dict[str, object], dict[str, object]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = dataset_json(dcmread(io.BytesIO(raw), defer_size=1 << 20, force=True))
        slow = dcmread(io.BytesIO(raw), defer_size=1 << 20, force=True).to_json_dict(
            bulk_data_element_handler=lambda _e: "", bulk_data_threshold=1024
        )
    for element in slow.values():
        if isinstance(element, dict):
            element.pop("BulkDataURI", None)
    return fast, slow


@pytest.mark.parametrize("name", FILES)
def test_matches_pydicom_on_samples(name: str) -> None:
    fast, slow = _both((SAMPLES / name).read_bytes())
    assert fast == slow


def test_matches_pydicom_on_the_synthetic_series() -> None:
    fast, slow = _both(to_bytes(ct_series(1).datasets[0]))
    assert fast == slow

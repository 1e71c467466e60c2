"""Paths to the sample files pydicom and pydicom-data install (never `get_testdata_files`,
which tries to download what is missing and hangs offline)."""

from pathlib import Path

import data_store
import pydicom

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA_FILES = Path(data_store.__file__).parent / "data"


def sample(name: str) -> Path:
    for folder in (PYDICOM_FILES, PYDICOM_DATA_FILES):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(name)


def sample_bytes(name: str) -> bytes:
    return sample(name).read_bytes()

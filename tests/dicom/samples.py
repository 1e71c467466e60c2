"""pydicom's own sample files, located by path (``get_testdata_file`` may try the network)."""

from __future__ import annotations

from pathlib import Path

import pydicom.data

SAMPLES = Path(pydicom.data.__file__).parent / "test_files"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()

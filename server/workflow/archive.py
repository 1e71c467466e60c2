"""Report SRs into the archive through the DICOM gateway's one ingest path, so they are vetted,
stored and indexed like any object and other systems find them by C-FIND, C-MOVE and QIDO."""

from __future__ import annotations

from collections.abc import Callable

from server.dicom.ingest import Ingest, Upload


class ArchiveRefused(Exception):
    """The archive refused the object (or is not running); the export queue retries it."""


class DicomArchiveWriter:
    def __init__(self, ingest: Callable[[], Ingest | None]) -> None:
        # Resolved per call: the gateway's cleanup context starts after the workflow's.
        self._ingest = ingest

    async def ingest(self, data: bytes, facility: str) -> object:
        service = self._ingest()
        if service is None:
            raise ArchiveRefused("the DICOM archive is not running")
        upload = await service.open(Upload(facility, "import", remote="workflow:reports"))
        try:
            result = await service.ingest(upload, data)
        finally:
            await service.close(upload)
        if result.outcome == "rejected":
            raise ArchiveRefused(f"the archive refused the report SR: {result.reason}")
        return result.sop_instance_uid

"""One received C-STORE object through the ingest path, whichever receiver got it.

Both DIMSE receivers (pynetdicom's handler thread and the lean storage path on the event loop)
call ``receive`` with the Part 10 bytes and answer the peer with the status it returns. The
object is vetted first, so a refused one costs no disk write; the index writer then flushes its
file and inserts its index entry at the same time (``IndexWriter.submit``).
"""

from __future__ import annotations

import asyncio
import logging

from server.dicom.ingest import Ingest, Upload
from server.dicom.parse import Failure, Rejected, prepare

log = logging.getLogger(__name__)

SUCCESS = 0x0000


async def receive(ingest: Ingest, upload: Upload, raw: bytes, sop_uid: str, sop_class: str) -> int:
    """Vet, store and index one object; return the DIMSE status for the peer."""
    try:
        prepared = await asyncio.to_thread(prepare, raw, sop_class or None)
    except Rejected as exc:
        await ingest.reject(upload, exc, sop_uid or None)
        return exc.failure.value
    except Exception:
        log.exception("vetting a C-STORE data set failed")
        return Failure.CANNOT_UNDERSTAND.value
    try:
        result = await ingest.commit(upload, prepared)
    except Exception:
        log.exception("storing a C-STORE data set failed")
        return Failure.OUT_OF_RESOURCES.value
    return result.failure.value if result.failure is not None else SUCCESS

"""One received C-STORE object through the ingest path, whichever receiver got it.

Both DIMSE receivers (pynetdicom's handler thread and the lean storage path on the event loop)
call ``receive`` with the Part 10 bytes and answer the peer with the status it returns. The
durable write of the bytes starts at once and overlaps the header parse; the object is indexed
only once both succeeded, and a refused object's blob is removed again.
"""

from __future__ import annotations

import asyncio
import logging

from server.dicom.index import blob_key
from server.dicom.ingest import Ingest, Upload
from server.dicom.parse import UID_PATTERN, Failure, Rejected, prepare

log = logging.getLogger(__name__)

SUCCESS = 0x0000


async def receive(ingest: Ingest, upload: Upload, raw: bytes, sop_uid: str, sop_class: str) -> int:
    """Vet, store and index one object; return the DIMSE status for the peer."""
    key = blob_key(sop_uid) if UID_PATTERN.match(sop_uid) and len(sop_uid) <= 64 else None
    written = (
        asyncio.get_running_loop().create_task(ingest.blobs.put_new(key, raw))
        if key is not None
        else None
    )
    try:
        prepared = await asyncio.to_thread(prepare, raw, sop_class or None)
    except Rejected as exc:
        await _forget(ingest, written, key)
        await ingest.reject(upload, exc, sop_uid or None)
        return exc.failure.value
    except Exception:
        await _forget(ingest, written, key)
        log.exception("vetting a C-STORE data set failed")
        return Failure.CANNOT_UNDERSTAND.value
    try:
        if written is not None:
            await written
        result = await ingest.commit(upload, prepared, key)
    except Exception:
        await _forget(ingest, written, key)
        log.exception("storing a C-STORE data set failed")
        return Failure.OUT_OF_RESOURCES.value
    return result.failure.value if result.failure is not None else SUCCESS


async def _forget(ingest: Ingest, written: asyncio.Task[None] | None, key: str | None) -> None:
    """Remove a blob written ahead for an object that was then refused."""
    if written is None or key is None:
        return
    try:
        await written
        await ingest.blobs.delete(key)
    except Exception:
        log.exception("removing the blob of a refused object failed")

"""The index writer and the archive reader around an entry whose file is not whole yet.

The writer inserts an object's index entry while its file is still being flushed. These tests
build, on a real store and a real blob directory, the states that leaves behind: a file still
being written by another process, and an entry a crash left with a short or missing file.
"""

from __future__ import annotations

import asyncio
import errno
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.dicom.archive import Archive
from server.dicom.index import INSTANCES, IndexWriter, build_docs
from server.dicom.parse import Prepared, prepare
from server.store.blobs import LocalBlobStore
from server.store.database import Store
from tests.dicom.synthetic import ct_series

FACILITY = "main"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = Store(store_url, f"w{uuid.uuid4().hex[:16]}")
    yield store
    await store.close()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
async def writer(store: Store, blobs: LocalBlobStore) -> AsyncIterator[IndexWriter]:
    writer = IndexWriter(store, blobs)
    writer.start()
    yield writer
    await writer.stop()


def one_object() -> Prepared:
    return prepare(ct_series(1).files()[0])


def blob_files(blobs: LocalBlobStore) -> list[Path]:
    return sorted(p for p in blobs.root.rglob("*.dcm") if p.is_file())


async def left_by(
    store: Store, blobs: LocalBlobStore, prepared: Prepared, *, age_s: float, kept_bytes: int | None
) -> str:
    """An index entry for ``prepared`` whose file holds only ``kept_bytes`` (None: no file)."""
    key = f"dicom/00/{prepared.sop_instance_uid}.dead.dcm"
    docs = build_docs(prepared, FACILITY, key, time.time() - age_s)
    await store[INSTANCES].insert_one(docs.instance)
    if kept_bytes is not None:
        blobs.path(key).parent.mkdir(parents=True, exist_ok=True)
        blobs.path(key).write_bytes(prepared.raw[:kept_bytes])
    return key


async def test_a_new_object_is_stored_once_and_a_resend_is_a_duplicate(
    store: Store, blobs: LocalBlobStore, writer: IndexWriter
) -> None:
    prepared = one_object()
    assert await writer.submit(prepared, FACILITY) is True
    doc = await store[INSTANCES].find_one({"_id": prepared.sop_instance_uid})
    assert doc is not None
    assert await blobs.get(doc["blob"]) == prepared.raw
    assert doc["size"] == len(prepared.raw)

    assert await writer.submit(prepared, FACILITY) is False
    assert blob_files(blobs) == [blobs.path(doc["blob"])]
    assert await store[INSTANCES].find_one({"_id": prepared.sop_instance_uid}) == doc


@pytest.mark.parametrize("kept_bytes", [None, 0, 1000], ids=["missing", "empty", "short"])
async def test_a_resend_repairs_an_entry_a_crash_left_without_its_whole_file(
    store: Store, blobs: LocalBlobStore, writer: IndexWriter, kept_bytes: int | None
) -> None:
    prepared = one_object()
    dead = await left_by(store, blobs, prepared, age_s=3600, kept_bytes=kept_bytes)

    assert await writer.submit(prepared, FACILITY) is True

    doc = await store[INSTANCES].find_one({"_id": prepared.sop_instance_uid})
    assert doc is not None
    assert doc["blob"] != dead
    assert await blobs.get(doc["blob"]) == prepared.raw
    assert blob_files(blobs) == [blobs.path(doc["blob"])]
    await writer.settled()
    assert await Archive(store, blobs).instance_bytes(prepared.sop_instance_uid) == prepared.raw


async def test_a_copy_another_process_is_still_writing_makes_a_resend_a_duplicate(
    store: Store, blobs: LocalBlobStore, writer: IndexWriter
) -> None:
    prepared = one_object()
    elsewhere = await left_by(store, blobs, prepared, age_s=0, kept_bytes=1000)

    async def finish_writing() -> None:
        await asyncio.sleep(0.3)
        blobs.path(elsewhere).write_bytes(prepared.raw)

    finishing = asyncio.create_task(finish_writing())
    assert await writer.submit(prepared, FACILITY) is False
    await finishing
    doc = await store[INSTANCES].find_one({"_id": prepared.sop_instance_uid})
    assert doc is not None
    assert doc["blob"] == elsewhere
    assert blob_files(blobs) == [blobs.path(elsewhere)]


class FullDisk(LocalBlobStore):
    """The disk fills up while an object is written."""

    def _write_new(self, key: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_file_that_cannot_be_written_leaves_no_index_entry(
    store: Store, tmp_path: Path
) -> None:
    writer = IndexWriter(store, FullDisk(tmp_path / "full"))
    writer.start()
    try:
        prepared = one_object()
        with pytest.raises(OSError, match="No space left"):
            await writer.submit(prepared, FACILITY)
        assert await store[INSTANCES].count_documents({}) == 0
        await writer.settled()
    finally:
        await writer.stop()


async def test_a_reader_waits_for_a_file_being_written_and_refuses_one_a_crash_cut_short(
    store: Store, blobs: LocalBlobStore
) -> None:
    archive = Archive(store, blobs)
    series = ct_series(2)
    being_written, cut_short = (prepare(raw) for raw in series.files())
    key = await left_by(store, blobs, being_written, age_s=0, kept_bytes=1000)
    await left_by(store, blobs, cut_short, age_s=3600, kept_bytes=1000)

    async def finish_writing() -> None:
        await asyncio.sleep(0.3)
        blobs.path(key).write_bytes(being_written.raw)

    finishing = asyncio.create_task(finish_writing())
    read = await archive.instance_bytes(being_written.sop_instance_uid)
    await finishing
    assert read == being_written.raw

    started = time.monotonic()
    with pytest.raises(KeyError):
        await archive.instance_bytes(cut_short.sop_instance_uid)
    assert time.monotonic() - started < 1.0

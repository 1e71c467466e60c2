"""The blob stores: atomic local files and GridFS, behind one interface."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.store.blobs import (
    BlobNotFound,
    BlobStore,
    GridFSBlobStore,
    LocalBlobStore,
    check_key,
    sharded_key,
)
from server.store.database import Store


@pytest.fixture(params=["local", "gridfs"])
async def blobs(
    request: pytest.FixtureRequest, tmp_path: Path, store_url: str
) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    store = Store(store_url, f"b{uuid.uuid4().hex[:16]}")
    yield GridFSBlobStore(store)
    await store.close()


async def test_put_get_replace_delete(blobs: BlobStore) -> None:
    key = sharded_key("1.2.3.4")
    assert not await blobs.exists(key)
    await blobs.put(key, b"first")
    assert await blobs.get(key) == b"first"
    await blobs.put(key, b"second version")
    assert await blobs.get(key) == b"second version"
    await blobs.delete(key)
    assert not await blobs.exists(key)
    with pytest.raises(BlobNotFound):
        await blobs.get(key)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../b", "", "a//b", "x" * 200, "a b"])
def test_keys_cannot_escape(key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        check_key(key)


async def test_local_write_leaves_no_temp_files(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    for i in range(5):
        await blobs.put(f"ab/{i}", bytes(1000))
    leftovers = list(tmp_path.rglob(".tmp-*"))
    assert leftovers == []
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["0", "1", "2", "3", "4"]


async def test_failed_local_write_keeps_the_old_file(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    await blobs.put("k", b"old")

    with pytest.raises(TypeError):
        await blobs.put("k", 12345)  # type: ignore[arg-type]
    assert await blobs.get("k") == b"old"
    assert list(tmp_path.rglob(".tmp-*")) == []


async def test_put_new_stores_a_fresh_key(blobs: BlobStore) -> None:
    key = sharded_key(f"new-{uuid.uuid4().hex}")
    await blobs.put_new(key, b"x" * 70_000)
    assert await blobs.get(key) == b"x" * 70_000


async def test_local_put_new_never_overwrites(tmp_path: Path) -> None:
    """A key written by put_new is someone's stored copy: a second write to it must fail."""
    blobs = LocalBlobStore(tmp_path)
    await blobs.put_new("cd/one.dcm", b"stored")
    with pytest.raises(FileExistsError):
        await blobs.put_new("cd/one.dcm", b"other")
    assert await blobs.get("cd/one.dcm") == b"stored"
    assert sorted(p.name for p in (tmp_path / "cd").iterdir()) == ["one.dcm"]

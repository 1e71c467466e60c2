"""Where DICOM files live: the local disk for one node, GridFS when several nodes share them.

``put`` is atomic (temp file, fsync, rename): a crash or an aborted transfer never leaves a
half-written object under its key. ``put_new`` is the cheaper write for a key that has never been
used: the file is created under its key, ``fdatasync``-ed and its directory fsync-ed, as durable
as ``put`` once it returns, without the temp file and rename. A crash while it runs can leave
that file incomplete, so it suits only callers that record the size elsewhere and check it on
reading (the DICOM archive names each received copy uniquely and its index records the size).
Orthanc, the benchmark's baseline, writes its files the same way but skips the directory fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from gridfs import AsyncGridFSBucket, NoFile

from server.store.database import Store

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,128}(/[A-Za-z0-9._-]{1,128}){0,7}$")


class BlobNotFound(KeyError):
    """No blob is stored under that key."""


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def put_new(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None:
        """Bytes stored under ``key`` so far (None if nothing is), without reading them."""
        ...


def check_key(key: str) -> str:
    """Keys become file paths; refuse anything that could climb out of the blob directory."""
    if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def sharded_key(name: str) -> str:
    """Spread files over 256 folders so no directory grows to millions of entries."""
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    return f"{digest[:2]}/{name}"


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._made: set[Path] = set()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _write_new(self, key: str, data: bytes) -> None:
        """Exclusive create: a half-written file (crash, full disk) is under a key nothing names
        yet, so no reader can see it; on an error it is removed at once."""
        target = self.path(key)
        parent = target.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            if len(self._made) < 4096:
                self._made.add(parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written:])
            os.fdatasync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            raise
        os.close(fd)
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def _delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, key, data)

    async def put_new(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write_new, key, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).exists)

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(key).stat)).st_size
        except FileNotFoundError:
            return None


class GridFSBlobStore:
    """Blobs in the shared database, for several server nodes without a shared disk.

    GridFS has no atomic replace; ``put`` uploads the new file first and removes older revisions
    after, so a reader always finds a complete file.
    """

    def __init__(self, store: Store, bucket: str = "blobs") -> None:
        self.bucket = AsyncGridFSBucket(store.db, bucket_name=bucket)
        self._files = store[f"{bucket}.files"]

    async def put(self, key: str, data: bytes) -> None:
        check_key(key)
        new_id = await self.bucket.upload_from_stream(key, data)
        async for old in self._files.find({"filename": key}, {"_id": 1}):
            if old["_id"] != new_id:
                with contextlib.suppress(NoFile):
                    await self.bucket.delete(old["_id"])

    async def put_new(self, key: str, data: bytes) -> None:
        await self.put(key, data)

    async def get(self, key: str) -> bytes:
        check_key(key)
        try:
            stream = await self.bucket.open_download_stream_by_name(key)
        except NoFile:
            raise BlobNotFound(key) from None
        data: bytes = await stream.read()
        return data

    async def delete(self, key: str) -> None:
        check_key(key)
        async for old in self._files.find({"filename": key}, {"_id": 1}):
            with contextlib.suppress(NoFile):
                await self.bucket.delete(old["_id"])

    async def exists(self, key: str) -> bool:
        check_key(key)
        return await self._files.find_one({"filename": key}, {"_id": 1}) is not None

    async def size(self, key: str) -> int | None:
        check_key(key)
        doc = await self._files.find_one({"filename": key}, {"length": 1}, sort=[("_id", -1)])
        return int(doc["length"]) if doc is not None else None

"""Group commit of new blobs: one syncfs round covers every file written before it started."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from server.store import group_sync
from server.store.blobs import LocalBlobStore

pytestmark = pytest.mark.skipif(not group_sync.available(), reason="syncfs is Linux-only")


async def test_concurrent_new_blobs_share_sync_rounds(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    payloads = {f"{n:02x}/object-{n}.dcm": bytes([n]) * 40_000 for n in range(24)}
    await asyncio.gather(*(blobs.put_new(key, data) for key, data in payloads.items()))
    for key, data in payloads.items():
        assert await blobs.get(key) == data
    assert blobs._group is not None
    assert 1 <= blobs._group.rounds < len(payloads)


class _HeldSync(group_sync.GroupSync):
    """A round that stays in its thread until the test lets it finish."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _sync(self) -> None:
        self.entered.set()
        self.release.wait(10)
        super()._sync()


async def test_a_waiter_never_joins_a_round_that_started_before_it_asked(tmp_path: Path) -> None:
    """A write that returned after a round's syncfs began is not covered by that round."""
    sync = _HeldSync(tmp_path)
    first = asyncio.ensure_future(sync.durable())
    await asyncio.to_thread(sync.entered.wait, 10)
    second = asyncio.ensure_future(sync.durable())
    await asyncio.sleep(0.05)
    sync.release.set()
    await first
    await second
    assert sync.rounds == 2


class _FailingSync(group_sync.GroupSync):
    """Fault injection: the filesystem reports a failed writeback (as syncfs does on EIO)."""

    def _sync(self) -> None:
        raise OSError(5, "Input/output error")


async def test_a_failed_sync_fails_the_write_and_leaves_no_file(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs._group = _FailingSync(tmp_path)
    with pytest.raises(OSError, match="Input/output error"):
        await blobs.put_new("ab/lost.dcm", b"never durable")
    assert not (tmp_path / "ab" / "lost.dcm").exists()
    assert not await blobs.exists("ab/lost.dcm")

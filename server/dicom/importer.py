"""``noctis import PATH``: ingest every DICOM file under a folder through the one ingest path.

Files are vetted, stored and indexed exactly as C-STORE objects are; a few are in flight at once
so the index writer can batch them. The run is recorded as an upload of kind ``import``.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from server.config import Settings
from server.dicom import setup as dicom_setup
from server.dicom.index import IndexWriter
from server.dicom.ingest import Ingest, Upload
from server.dicom.relay import RelayWriter
from server.hub import ALL_TOPICS, EventHub
from server.store.blobs import BlobStore, GridFSBlobStore, LocalBlobStore
from server.store.connect import open_store
from server.store.database import Store, ensure_indexes

IN_FLIGHT = 8


@dataclass
class ImportReport:
    files: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        return Counter(reason for _path, reason in self.rejected)


def walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _read(path: Path, limit: int) -> bytes:
    if path.stat().st_size > limit:
        raise ValueError(f"larger than the {limit >> 20} MiB upload limit")
    return path.read_bytes()


async def import_files(
    ingest: Ingest,
    root: Path,
    facility: str,
    max_bytes: int,
    progress: Callable[[ImportReport, int], None] | None = None,
) -> ImportReport:
    paths = list(walk(root))
    report = ImportReport()
    upload = await ingest.open(Upload(facility, "import", remote=str(root)[:200]))
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(path: Path) -> None:
        async with slots:
            try:
                raw = await asyncio.to_thread(_read, path, max_bytes)
            except (OSError, ValueError) as exc:
                report.rejected.append((str(path), f"unreadable: {exc}"))
            else:
                result = await ingest.ingest(upload, raw)
                if result.outcome == "stored":
                    report.stored += 1
                elif result.outcome == "duplicate":
                    report.duplicates += 1
                else:
                    report.rejected.append((str(path), result.reason or "rejected"))
            report.files += 1
            if progress is not None:
                progress(report, len(paths))

    try:
        await asyncio.gather(*(one(path) for path in paths))
    finally:
        await ingest.close(upload)
    return report


def progress_bar(stream: TextIO) -> Callable[[ImportReport, int], None]:
    def show(report: ImportReport, total: int) -> None:
        width = 30
        done = int(width * report.files / total) if total else width
        stream.write(
            f"\r[{'#' * done}{'.' * (width - done)}] {report.files}/{total}  "
            f"stored {report.stored}  duplicate {report.duplicates}  "
            f"rejected {len(report.rejected)}"
        )
        stream.flush()

    return show


def blob_store(settings: Settings, store: Store) -> BlobStore:
    if settings.blob_backend == "gridfs":
        return GridFSBlobStore(store)
    return LocalBlobStore(settings.data_dir / "blobs")


async def run_import(settings: Settings, root: Path, facility: str) -> int:
    if not await asyncio.to_thread(root.exists):
        print(f"error: {root} does not exist", file=sys.stderr)
        return 2
    async with open_store(settings) as store:
        await ensure_indexes(store, dicom_setup.INDEXES)
        # The run's events reach a running server's rooms through the store (see relay.py).
        hub = EventHub()
        hub.subscribe(ALL_TOPICS, RelayWriter(store))
        ingest = Ingest(store, IndexWriter(store, blob_store(settings, store)), hub)
        ingest.start()
        try:
            report = await import_files(
                ingest, root, facility, settings.max_upload_bytes, progress_bar(sys.stderr)
            )
        finally:
            await ingest.stop()
    print(file=sys.stderr)
    print(
        f"{report.files} files: {report.stored} stored, {report.duplicates} duplicate, "
        f"{len(report.rejected)} rejected"
    )
    for reason, count in report.reasons().most_common():
        print(f"  rejected {count}: {reason}")
    return 0 if not report.rejected else 1

"""The one ingest path for C-STORE, STOW-RS and ``noctis import``, and the live upload status.

Every object is vetted (``parse.prepare``), written durably and indexed (``IndexWriter``) before
its sender hears success. Each sender's session — an association (from its first C-STORE), a
STOW request, an import run — is an *upload*: it is recorded in ``dicom_uploads`` and narrated
on the event hub:

- ``dicom.association.opened``  ``{upload_id, kind, calling_ae, remote, started_at}``
- ``dicom.instance.stored``     ``{upload_id, sop_instance_uid, study_instance_uid,
  series_instance_uid, modality, duplicate, stored, duplicates, failed, bytes}``
- ``dicom.instance.failed``     ``{upload_id, sop_instance_uid, reason, status, failed}``
- ``dicom.association.closed``  ``{upload_id, stored, duplicates, failed, bytes, aborted,
  studies, seconds}``
- ``dicom.study.stable``        ``{study_instance_uid, received, quiet_s}`` once no object
  arrived for the study for ``quiet_s`` seconds.

Every event carries the upload's facility, so the rooms can scope who sees it. Events are
published in order by one task, after the index holds what they report, but without holding up
the sender's acknowledgement while subscribers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from server.dicom.index import IndexWriter
from server.dicom.parse import Failure, Prepared, Rejected, prepare
from server.hub import DomainEvent, EventHub
from server.store.database import IndexSpec, Store

log = logging.getLogger(__name__)

UPLOADS = "dicom_uploads"
INDEXES = [IndexSpec(UPLOADS, [("facility", 1), ("started_at", -1)])]

UploadKind = Literal["dimse", "stow", "import"]
Outcome = Literal["stored", "duplicate", "rejected"]


@dataclass
class Upload:
    """One sender session and its running totals."""

    facility: str
    kind: UploadKind
    calling_ae: str | None = None
    remote: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    bytes: int = 0
    studies: set[str] = field(default_factory=set)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "upload_id": self.id,
            "kind": self.kind,
            "calling_ae": self.calling_ae,
            "remote": self.remote,
            "started_at": self.started_at,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "bytes": self.bytes,
            "studies": sorted(self.studies),
        }


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_class_uid: str | None = None
    failure: Failure | None = None
    reason: str | None = None


MAX_FAILURES_KEPT = 50


class Ingest:
    def __init__(
        self,
        store: Store,
        writer: IndexWriter,
        hub: EventHub,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._writer = writer
        self._hub = hub
        self._clock = clock
        self._outbox: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._on_change: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` as soon as a new object is indexed, before its event goes out."""
        self._on_change.append(callback)

    def start(self) -> None:
        self._writer.start()
        self._publisher = asyncio.get_running_loop().create_task(
            self._publish_in_order(), name="dicom-events"
        )

    async def stop(self) -> None:
        await self._writer.stop()
        await self.delivered()
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None

    async def delivered(self) -> None:
        """Wait until every event so far has reached the hub's subscribers."""
        await self._outbox.join()

    async def _publish_in_order(self) -> None:
        """Subscribers (rooms, workflow) run here, in event order, off the sender's path: an
        object is acknowledged once it is stored and indexed, not once everyone has heard."""
        while True:
            event = await self._outbox.get()
            try:
                await self._hub.publish(event)
            finally:
                self._outbox.task_done()

    async def open(self, upload: Upload) -> Upload:
        doc = {"_id": upload.id, "facility": upload.facility, "state": "open", **upload.summary()}
        doc.pop("upload_id")
        await self._store[UPLOADS].insert_one(doc)
        await self._publish(
            upload,
            "dicom.association.opened",
            {
                "upload_id": upload.id,
                "kind": upload.kind,
                "calling_ae": upload.calling_ae,
                "remote": upload.remote,
                "started_at": upload.started_at,
            },
        )
        return upload

    async def close(self, upload: Upload, aborted: bool = False) -> None:
        """Record the totals; once ``dicom.association.closed`` is out, all is counted."""
        await self.settled()
        seconds = round(self._clock() - upload.started_at, 3)
        summary = upload.summary()
        summary.pop("upload_id")
        await self._store[UPLOADS].update_one(
            {"_id": upload.id},
            {
                "$set": {
                    **summary,
                    "state": "aborted" if aborted else "closed",
                    "ended_at": self._clock(),
                    "failures": upload.failures,
                }
            },
        )
        await self._publish(
            upload,
            "dicom.association.closed",
            {
                "upload_id": upload.id,
                "stored": upload.stored,
                "duplicates": upload.duplicates,
                "failed": upload.failed,
                "bytes": upload.bytes,
                "aborted": aborted,
                "studies": sorted(upload.studies),
                "seconds": seconds,
            },
        )

    async def ingest(
        self,
        upload: Upload,
        raw: bytes,
        expected_sop_class: str | None = None,
        expected_study: str | None = None,
    ) -> Result:
        """Vet (in a thread), store and index one object; never raises for a bad object."""
        try:
            prepared = await asyncio.to_thread(prepare, raw, expected_sop_class)
        except Rejected as exc:
            return await self.reject(upload, exc, None)
        if expected_study is not None and prepared.study_instance_uid != expected_study:
            mismatch = Rejected(
                Failure.DOES_NOT_MATCH_SOP_CLASS,
                f"StudyInstanceUID {prepared.study_instance_uid} is not the target study",
            )
            return await self.reject(upload, mismatch, prepared.sop_instance_uid)
        return await self.commit(upload, prepared)

    async def reject(self, upload: Upload, exc: Rejected, sop_instance_uid: str | None) -> Result:
        upload.failed += 1
        if len(upload.failures) < MAX_FAILURES_KEPT:
            upload.failures.append({"sop_instance_uid": sop_instance_uid, "reason": exc.reason})
        await self._publish(
            upload,
            "dicom.instance.failed",
            {
                "upload_id": upload.id,
                "sop_instance_uid": sop_instance_uid,
                "reason": exc.reason,
                "status": exc.failure.value,
                "failed": upload.failed,
            },
        )
        return Result("rejected", sop_instance_uid, failure=exc.failure, reason=exc.reason)

    async def settled(self) -> None:
        """Wait until acknowledged objects are fully counted (see ``IndexWriter.settled``)."""
        await self._writer.settled()

    async def commit(self, upload: Upload, prepared: Prepared) -> Result:
        """Store and index a vetted object."""
        try:
            new = await self._writer.submit(prepared, upload.facility)
        except Exception as exc:
            log.exception("storing %s failed", prepared.sop_instance_uid)
            return await self.reject(
                upload,
                Rejected(Failure.OUT_OF_RESOURCES, f"could not store the object: {exc}"[:300]),
                prepared.sop_instance_uid,
            )
        if new:
            upload.stored += 1
            upload.bytes += len(prepared.raw)
            for callback in self._on_change:
                callback()
        else:
            upload.duplicates += 1
        study = prepared.study_instance_uid
        upload.studies.add(study)
        await self._publish(
            upload,
            "dicom.instance.stored",
            {
                "upload_id": upload.id,
                "sop_instance_uid": prepared.sop_instance_uid,
                "study_instance_uid": study,
                "series_instance_uid": prepared.series_instance_uid,
                "modality": prepared.value("00080060"),
                "duplicate": not new,
                "stored": upload.stored,
                "duplicates": upload.duplicates,
                "failed": upload.failed,
                "bytes": upload.bytes,
            },
        )
        return Result(
            "stored" if new else "duplicate",
            prepared.sop_instance_uid,
            study,
            prepared.series_instance_uid,
            prepared.sop_class_uid,
        )

    async def _publish(self, upload: Upload, topic: str, data: dict[str, Any]) -> None:
        self._outbox.put_nowait(DomainEvent(topic, data, upload.facility))


class StabilityWatcher:
    """Publishes ``dicom.study.stable`` once a study received nothing new for ``quiet_s``.

    It listens on the hub of the server process, which also hears the gateway workers' events,
    so a study arriving through several processes is judged as one.
    """

    def __init__(self, hub: EventHub, quiet_s: float) -> None:
        self._hub = hub
        self.quiet_s = quiet_s
        self._active: dict[str, tuple[float, str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = hub.subscribe("dicom.instance.stored", self._stored)

    async def _stored(self, event: DomainEvent) -> None:
        if event.data.get("duplicate") or event.facility is None:
            return
        study = str(event.data["study_instance_uid"])
        _last, facility, count = self._active.get(study, (0.0, event.facility, 0))
        self._active[study] = (time.monotonic(), facility, count + 1)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="dicom-stable")

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        tick = max(0.05, min(1.0, self.quiet_s / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            quiet = [s for s, (t, _f, _c) in self._active.items() if now - t >= self.quiet_s]
            for study in quiet:
                _t, facility, count = self._active.pop(study)
                await self._hub.publish(
                    DomainEvent(
                        "dicom.study.stable",
                        {"study_instance_uid": study, "received": count, "quiet_s": self.quiet_s},
                        facility,
                    )
                )

"""AI findings that arrive by C-STORE: an SR sent from an AE title registered to an AI engine.

The gateway stores every object first (``dicom.association.opened`` names the calling AE,
``dicom.instance.stored`` the instance); this listener remembers which open associations belong
to an engine, reads each SR they store back from the archive (``dicom_instances`` gives the blob
key and SOP class) and feeds it to the same intake as ``POST /api/ai/sr``. The C-STORE itself has
already succeeded by then, so a malformed SR is reported in the audit log (``ai.sr`` failure,
with the reason) and stores no finding.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from server.auth.audit import AuditLog
from server.http.errors import ApiError
from server.hub import DomainEvent, EventHub, Unsubscribe
from server.store.blobs import BlobNotFound, BlobStore
from server.store.database import Store
from server.workflow.ai import AiResults
from server.workflow.ai_sr import SR_CLASSES

log = logging.getLogger(__name__)

ARCHIVE_INSTANCES = "dicom_instances"
# Open associations of AI engines being tracked at once; the oldest is forgotten beyond this.
MAX_TRACKED = 1000


class AiStoreListener:
    def __init__(self, store: Store, blobs: BlobStore, ai: AiResults, audit: AuditLog) -> None:
        self._instances = store[ARCHIVE_INSTANCES]
        self._blobs = blobs
        self._ai = ai
        self._audit = audit
        self._uploads: OrderedDict[str, str] = OrderedDict()

    def subscribe(self, hub: EventHub) -> list[Unsubscribe]:
        return [
            hub.subscribe("dicom.association.opened", self.opened),
            hub.subscribe("dicom.association.closed", self.closed),
            hub.subscribe("dicom.instance.stored", self.stored),
        ]

    async def opened(self, event: DomainEvent) -> None:
        upload_id, calling_ae = event.data.get("upload_id"), event.data.get("calling_ae")
        if not isinstance(upload_id, str) or not isinstance(calling_ae, str):
            return
        engine = await self._ai.engines.find_one({"ae_title": calling_ae.strip()})
        if engine is None or engine.get("disabled"):
            return
        self._uploads[upload_id] = engine["_id"]
        while len(self._uploads) > MAX_TRACKED:
            self._uploads.popitem(last=False)

    async def closed(self, event: DomainEvent) -> None:
        upload_id = event.data.get("upload_id")
        if isinstance(upload_id, str):
            self._uploads.pop(upload_id, None)

    async def stored(self, event: DomainEvent) -> None:
        upload_id = event.data.get("upload_id")
        engine_name = self._uploads.get(upload_id) if isinstance(upload_id, str) else None
        if engine_name is None or event.data.get("duplicate") is True:
            return
        sop_uid = str(event.data.get("sop_instance_uid") or "")
        instance = await self._instances.find_one({"_id": sop_uid})
        if instance is None or instance.get("sop_class_uid") not in SR_CLASSES:
            return
        engine = await self._ai.engines.find_one({"_id": engine_name})
        if engine is None:
            return
        try:
            data = await self._blobs.get(str(instance["blob"]))
            findings = await self._ai.intake_sr(engine, data)
        except (ApiError, BlobNotFound) as exc:
            reason = exc.message if isinstance(exc, ApiError) else "the stored SR is missing"
            log.warning("AI SR %s from %s refused: %s", sop_uid, engine_name, reason)
            await self._audit.record(
                actor=f"ai:{engine_name}",
                action="ai.sr",
                outcome="failure",
                target=sop_uid,
                facility=event.facility,
                details={"reason": reason},
            )
            return
        await self._audit.record(
            actor=f"ai:{engine_name}",
            action="ai.sr",
            outcome="success",
            target=sop_uid,
            facility=event.facility,
            details={"findings": [f["_id"] for f in findings]},
        )

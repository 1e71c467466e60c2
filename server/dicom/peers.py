"""Which DICOM peers may talk to Noctis, for which facility, and where C-MOVE may send.

``dicom_peers`` documents: ``{_id, ae_title, host (None = any host), port (None = not a move
destination), facility, description, created_at, created_by}``. An association is accepted only
when its calling AE title (and, if the entry names one, its host) is on the list; the entry's
facility then scopes everything the association stores and sees.

Open mode: in the dev environment, while the list is empty, every caller is accepted for the
default facility and the log says so. Production never runs open.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from server.store.database import Document, IndexSpec, Store

log = logging.getLogger(__name__)

COLLECTION = "dicom_peers"
INDEXES = [IndexSpec(COLLECTION, [("ae_title", 1)]), IndexSpec(COLLECTION, [("facility", 1)])]
OPEN_FACILITY = "main"
_CACHE_S = 2.0


@dataclass(frozen=True)
class Peer:
    id: str
    ae_title: str
    host: str | None
    port: int | None
    facility: str
    description: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ae_title": self.ae_title,
            "host": self.host,
            "port": self.port,
            "facility": self.facility,
            "description": self.description,
        }


def _peer(doc: Document) -> Peer:
    return Peer(
        id=str(doc["_id"]),
        ae_title=str(doc["ae_title"]),
        host=doc.get("host"),
        port=doc.get("port"),
        facility=str(doc["facility"]),
        description=str(doc.get("description") or ""),
    )


@dataclass(frozen=True)
class Admission:
    accepted: bool
    facility: str | None
    open_mode: bool = False


def admit(peers: list[Peer], calling_ae: str, host: str, allow_open: bool) -> Admission:
    """Pure: whether a caller is let in, and for which facility."""
    if not peers:
        if allow_open:
            return Admission(True, OPEN_FACILITY, open_mode=True)
        return Admission(False, None)
    for peer in peers:
        if peer.ae_title == calling_ae.strip() and (peer.host is None or peer.host == host):
            return Admission(True, peer.facility)
    return Admission(False, None)


class Peers:
    def __init__(self, store: Store, allow_open: bool) -> None:
        self._collection = store[COLLECTION]
        self.allow_open = allow_open
        self._cached: list[Peer] | None = None
        self._cached_at = 0.0

    async def all(self, facility: str | None = None) -> list[Peer]:
        query = {} if facility is None else {"facility": facility}
        return [_peer(doc) async for doc in self._collection.find(query).sort("ae_title", 1)]

    async def _snapshot(self) -> list[Peer]:
        if self._cached is None or time.monotonic() - self._cached_at > _CACHE_S:
            self._cached = await self.all()
            self._cached_at = time.monotonic()
        return self._cached

    async def admit(self, calling_ae: str, host: str) -> Admission:
        admission = admit(await self._snapshot(), calling_ae, host, self.allow_open)
        if admission.open_mode:
            log.warning(
                "DICOM gateway in OPEN mode (dev, no peers configured): accepting %r from %s",
                calling_ae,
                host,
            )
        return admission

    async def destination(self, ae_title: str, facility: str) -> Peer | None:
        for peer in await self._snapshot():
            if (
                peer.ae_title == ae_title.strip()
                and peer.facility == facility
                and peer.port is not None
                and peer.host is not None
            ):
                return peer
        return None

    async def add(
        self,
        ae_title: str,
        facility: str,
        host: str | None,
        port: int | None,
        description: str,
        created_by: str,
    ) -> Peer:
        doc = {
            "_id": uuid.uuid4().hex,
            "ae_title": ae_title.strip(),
            "host": host,
            "port": port,
            "facility": facility,
            "description": description,
            "created_at": time.time(),
            "created_by": created_by,
        }
        await self._collection.insert_one(doc)
        self._cached = None
        return _peer(doc)

    async def remove(self, peer_id: str, facility: str | None) -> bool:
        query: Document = {"_id": peer_id}
        if facility is not None:
            query["facility"] = facility
        result = await self._collection.delete_one(query)
        self._cached = None
        return result.deleted_count == 1

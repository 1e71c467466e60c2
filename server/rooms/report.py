"""The report draft: one Yjs document per study, co-edited through the y-protocols sync exchange.

No node keeps the document between messages: every update is appended to the store before it is
relayed, and a sync step 1 is answered from the store (last snapshot plus the updates after it),
so any node can serve any reader and a restart loses nothing. Every ``COMPACT_EVERY`` updates the
log is folded into a new snapshot by applying it to a ``Doc`` and taking ``get_update()``, which
is an order of magnitude faster than ``merge_updates()`` on long logs.

Once the workflow signs the report (it reads this draft's text and announces ``report.signed`` on
the hub), the draft is frozen: the mark is stored, so every node refuses further updates with
``report_frozen``; sync step 1 still answers, so readers can see what was signed. Addenda are
written in the workflow with their own text and leave the frozen draft as it is.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import Binary
from pycrdt import (
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    read_message,
    write_message,
)
from pymongo.errors import DuplicateKeyError

from server.http.errors import ApiError
from server.rooms.oplog import Clock, Sequences
from server.store.database import Document, IndexSpec, Store

UPDATES = "report_updates"
SNAPSHOTS = "report_snapshots"
FROZEN = "report_frozen"
INDEXES = [IndexSpec(UPDATES, [("study_uid", 1), ("n", 1)], unique=True)]
COMPACT_EVERY = 200
# The shared text type holding the draft, as the web client names it (client/src/report.ts).
REPORT_TEXT = "report"
EMPTY_UPDATE = b"\x00\x00"


@dataclass(frozen=True)
class SyncResult:
    replies: list[bytes]
    relay: bytes | None


def decode_message(text: str) -> tuple[int, bytes]:
    """A base64 y-protocols SYNC message -> (sync type, payload); refuses anything else."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("validation_failed", "message is not valid base64") from None
    if len(raw) < 3 or raw[0] != YMessageType.SYNC or raw[1] not in set(YSyncMessageType):
        raise ApiError("validation_failed", "message is not a y-protocols SYNC message")
    try:
        payload = read_message(raw[2:])
    except (RuntimeError, IndexError, ValueError):
        raise ApiError("validation_failed", "message has a broken length prefix") from None
    return raw[1], payload


def encode(message: bytes) -> str:
    return base64.b64encode(message).decode("ascii")


def _check_update(update: bytes) -> None:
    try:
        Doc().apply_update(update)
    except Exception:
        raise ApiError("validation_failed", "message holds no decodable Yjs update") from None


class ReportDrafts:
    def __init__(
        self, store: Store, clock: Clock = time.time, compact_every: int = COMPACT_EVERY
    ) -> None:
        self._updates = store[UPDATES]
        self._snapshots = store[SNAPSHOTS]
        self._frozen = store[FROZEN]
        self._sequences = Sequences(store)
        self._clock = clock
        self.compact_every = compact_every

    async def handle(self, study_uid: str, text: str, user_id: str) -> SyncResult:
        kind, payload = decode_message(text)
        if kind == YSyncMessageType.SYNC_STEP1:
            doc, _ = await self.load(study_uid)
            try:
                missing = doc.get_update(payload)
            except Exception:
                raise ApiError("validation_failed", "step 1 holds no valid state vector") from None
            return SyncResult(
                replies=[
                    create_sync_message_step2(missing),
                    create_sync_message(doc),
                ],
                relay=None,
            )
        if payload == EMPTY_UPDATE:
            return SyncResult(replies=[], relay=None)
        _check_update(payload)
        if await self.frozen(study_uid) is not None:
            raise ApiError("report_frozen", "The report was signed; its draft no longer changes.")
        await self.append(study_uid, payload, user_id)
        return SyncResult(replies=[], relay=create_update_message(payload))

    async def append(self, study_uid: str, update: bytes, user_id: str) -> int:
        n = await self._sequences.next(f"report:{study_uid}")
        await self._updates.insert_one(
            {
                "study_uid": study_uid,
                "n": n,
                "update": Binary(update),
                "user_id": user_id,
                "at": self._clock(),
            }
        )
        if n % self.compact_every == 0:
            await self.compact(study_uid)
        return n

    async def load(self, study_uid: str) -> tuple[Doc[Any], int]:
        """The document as stored, and the last update number folded into it."""
        for _ in range(5):
            snapshot = await self._snapshots.find_one({"_id": study_uid})
            upto = int(snapshot["upto"]) if snapshot else 0
            cursor = self._updates.find({"study_uid": study_uid, "n": {"$gt": upto}}).sort("n", 1)
            updates = [doc async for doc in cursor]
            again = await self._snapshots.find_one({"_id": study_uid}, {"upto": 1})
            if (int(again["upto"]) if again else 0) == upto:
                break
        else:
            raise ApiError("service_unavailable", "The report draft is being compacted; retry.")
        doc: Doc[Any] = Doc()
        if snapshot:
            doc.apply_update(bytes(snapshot["update"]))
        for entry in updates:
            doc.apply_update(bytes(entry["update"]))
        last = int(updates[-1]["n"]) if updates else upto
        return doc, last

    async def compact(self, study_uid: str) -> None:
        """Fold the log into a snapshot; a concurrent compaction that got further wins."""
        doc, last = await self.load(study_uid)
        snapshot: Document = {"_id": study_uid, "update": Binary(doc.get_update()), "upto": last}
        result = await self._snapshots.update_one(
            {"_id": study_uid, "upto": {"$lt": last}}, {"$set": snapshot}
        )
        if result.matched_count == 0:
            if await self._snapshots.find_one({"_id": study_uid}, {"upto": 1}) is not None:
                return
            try:
                await self._snapshots.insert_one(snapshot)
            except DuplicateKeyError:
                return
        await self._updates.delete_many({"study_uid": study_uid, "n": {"$lte": last}})

    async def draft_text(self, study_uid: str) -> str | None:
        """The draft as plain text (what the workflow signs), or None when nobody wrote one."""
        doc, last = await self.load(study_uid)
        if last == 0:
            return None
        return str(doc.get(REPORT_TEXT, type=Text))

    async def state(self, study_uid: str) -> dict[str, object]:
        doc, _ = await self.load(study_uid)
        snapshot = await self._snapshots.find_one({"_id": study_uid}, {"upto": 1})
        upto = int(snapshot["upto"]) if snapshot else 0
        pending = await self._updates.count_documents({"study_uid": study_uid, "n": {"$gt": upto}})
        return {
            "state_vector": encode(doc.get_state()),
            "updates": pending,
            "frozen": await self.frozen(study_uid),
        }

    async def freeze(self, study_uid: str, signed: Mapping[str, Any]) -> Document | None:
        """Mark the draft signed; the new mark, or None when it was frozen already."""
        mark: Document = {
            "study_uid": study_uid,
            "version": int(signed["version"]),
            "signer": str(signed["signer"]),
            "signed_at": str(signed["signed_at"]),
            "at": self._clock(),
        }
        try:
            await self._frozen.insert_one({"_id": study_uid, **mark})
        except DuplicateKeyError:
            return None
        return mark

    async def frozen(self, study_uid: str) -> Document | None:
        doc = await self._frozen.find_one({"_id": study_uid}, {"_id": 0})
        return dict(doc) if doc else None


def create_sync_message_step2(update: bytes) -> bytes:
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(update)

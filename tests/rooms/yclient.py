"""A minimal Yjs client over pycrdt speaking the y-protocols sync messages the rooms relay."""

from __future__ import annotations

import base64
from typing import Any

from pycrdt import Doc, Text, TransactionEvent, create_sync_message, create_update_message

from server.rooms.report import create_sync_message_step2, decode_message


class YClient:
    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("body", type=Text)
        self.outbox: list[str] = []
        self._remote = False
        self.doc.observe(self._changed)

    def _changed(self, event: TransactionEvent) -> None:
        if not self._remote:
            self.outbox.append(b64(create_update_message(event.update)))

    def step1(self) -> str:
        return b64(create_sync_message(self.doc))

    def receive(self, message: str) -> str | None:
        """Apply a server message; answer a step 1 with our step 2."""
        kind, payload = decode_message(message)
        if kind == 0:
            return b64(create_sync_message_step2(self.doc.get_update(payload)))
        self._remote = True
        try:
            self.doc.apply_update(payload)
        finally:
            self._remote = False
        return None

    def take(self) -> list[str]:
        out, self.outbox = self.outbox, []
        return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

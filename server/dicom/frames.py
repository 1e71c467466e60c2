"""Cutting a storage association's byte stream into whole DIMSE messages, in the read callback.

The lean path first read each PDU with ``StreamReader.readexactly``: a 512 KiB image arrives in
about ten socket reads, and each woke the association's coroutine (a future, a task step) to
find out whether enough had arrived. Here a ``BufferedProtocol`` receives into one buffer, cuts
PDUs and their presentation data values in the loop's read callback, and hands the association
one ``Message`` per command (with its data set, if any); its coroutine wakes once per image.
Reading pauses while a message waits, so a peer cannot queue more than a buffer's worth.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal, cast

from server.dicom.dimse_codec import DATA_SET_TYPE, NO_DATA_SET, CommandError, command_int
from server.dicom.dimse_codec import read_command as decode_command

P_DATA = 0x04
RELEASE_RQ = 0x05
ABORT = 0x07
# The largest P-DATA-TF we announce and accept; dcmtk sends at most 128 KiB anyway.
MAX_PDU = 1 << 20
# One object is held in memory until it is stored; a peer sending more is aborted.
MAX_OBJECT_BYTES = 2 << 30
_BUFFER_BYTES = MAX_PDU + 6 + (64 << 10)

Kind = Literal["command", "release", "abort", "error", "closed"]


@dataclass
class Message:
    kind: Kind
    command: dict[int, bytes] = field(default_factory=dict)
    context_id: int = 0
    # The data set as its fragments: the receiver joins them once, behind its own prefix.
    data: list[bytes] | None = None
    reason: str = ""


class Frames(asyncio.BufferedProtocol):
    """One association's receiving side; ``accepted`` holds its negotiated context ids."""

    def __init__(self, skip: int) -> None:
        self._buffer = bytearray(_BUFFER_BYTES)
        self._start = 0
        self._end = 0
        self._skip = skip
        self._transport: asyncio.Transport | None = None
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._paused = False
        self._stopped = False
        self.accepted: set[int] = set()
        self.peer_host = ""
        self.idle_since = 0.0
        self._command = bytearray()
        self._request: dict[int, bytes] | None = None
        self._context_id = 0
        self._parts: list[bytes] = []
        self._received = 0

    # asyncio.BufferedProtocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = self._transport.get_extra_info("peername")
        self.peer_host = str(peer[0]) if peer else ""
        self.idle_since = asyncio.get_running_loop().time()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._end == len(self._buffer):
            self._compact()
        return memoryview(self._buffer)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self.idle_since = asyncio.get_running_loop().time()
        self._cut()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop(Message("closed"))

    # For the association's coroutine ---------------------------------------------------------

    async def next(self) -> Message:
        """The next message; reading resumes once none is waiting."""
        message = await self._messages.get()
        if self._messages.empty() and self._paused and not self._stopped:
            self._paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        return message

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # Cutting -----------------------------------------------------------------------------------

    def _compact(self) -> None:
        """Move the unread bytes to the front; same size, so no buffer export stands in the way."""
        unread = self._end - self._start
        self._buffer[0:unread] = self._buffer[self._start : self._end]
        self._start, self._end = 0, unread

    def _cut(self) -> None:
        while not self._stopped:
            if self._skip:
                taken = min(self._skip, self._end - self._start)
                self._start += taken
                self._skip -= taken
                if self._skip:
                    break
            available = self._end - self._start
            if available < 6:
                break
            start = self._start
            kind = self._buffer[start]
            length = int.from_bytes(self._buffer[start + 2 : start + 6], "big")
            if length > MAX_PDU:
                self._stop(Message("error", reason=f"PDU of {length} bytes exceeds {MAX_PDU}"))
                return
            if available < 6 + length:
                if start + 6 + length > len(self._buffer):
                    self._compact()
                break
            with memoryview(self._buffer) as whole, whole[start + 6 : start + 6 + length] as body:
                self._pdu(kind, body)
            self._start = start + 6 + length
        if self._start == self._end:
            self._start = self._end = 0

    def _pdu(self, kind: int, body: memoryview) -> None:
        if kind == RELEASE_RQ:
            self._deliver(Message("release"))
        elif kind == ABORT:
            self._stop(Message("abort"))
        elif kind != P_DATA:
            self._stop(Message("error", reason=f"unexpected PDU type 0x{kind:02x}"))
        else:
            self._p_data(body)

    def _p_data(self, body: memoryview) -> None:
        offset = 0
        while offset < len(body) and not self._stopped:
            if offset + 6 > len(body):
                self._stop(Message("error", reason="truncated presentation data value"))
                return
            size = int.from_bytes(body[offset : offset + 4], "big")
            if size < 2 or offset + 4 + size > len(body):
                self._stop(Message("error", reason="presentation data value overruns its PDU"))
                return
            context_id = body[offset + 4]
            control = body[offset + 5]
            data = body[offset + 6 : offset + 4 + size]
            offset += 4 + size
            if context_id not in self.accepted:
                self._stop(
                    Message("error", reason=f"presentation context {context_id} not accepted")
                )
                return
            if control & 0x01:
                self._command_fragment(context_id, control, data)
            else:
                self._data_fragment(context_id, control, data)

    def _command_fragment(self, context_id: int, control: int, data: memoryview) -> None:
        if self._request is not None:
            self._stop(Message("error", reason="a command arrived inside a data set"))
            return
        self._command += data
        if not control & 0x02:
            return
        try:
            request = decode_command(bytes(self._command))
        except CommandError as exc:
            self._stop(Message("error", reason=str(exc)))
            return
        self._command.clear()
        if command_int(request, DATA_SET_TYPE) in (None, NO_DATA_SET):
            self._deliver(Message("command", request, context_id))
        else:
            self._request, self._context_id = request, context_id

    def _data_fragment(self, context_id: int, control: int, data: memoryview) -> None:
        if self._request is None or context_id != self._context_id:
            self._stop(Message("error", reason="a data set arrived without its command"))
            return
        self._parts.append(bytes(data))
        self._received += len(data)
        if self._received > MAX_OBJECT_BYTES:
            self._stop(Message("error", reason=f"data set above {MAX_OBJECT_BYTES >> 20} MiB"))
            return
        if control & 0x02:
            parts, self._parts, self._received = self._parts, [], 0
            request, self._request = self._request, None
            self._deliver(Message("command", request, context_id, parts))

    def _deliver(self, message: Message) -> None:
        self._messages.put_nowait(message)
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _stop(self, message: Message) -> None:
        """No more messages after this one (an error, an abort, the connection gone)."""
        if self._stopped:
            return
        self._stopped = True
        self._messages.put_nowait(message)

"""A lean receive path for storage-only associations, served on the event loop.

Measured with ``load-tests/bench_ingest.py``: a bare pynetdicom SCP that only writes files is
slower than Orthanc, so no ingest built on pynetdicom's association machinery can match Orthanc.
Per image, pynetdicom's DUL thread polls and queues each PDU, its reactor thread decodes it, and
the handler thread then waits on the event loop; those hand-offs cost more than our whole ingest.

Associations whose A-ASSOCIATE-RQ proposes only storage and verification contexts, with no
extended negotiation (role selection, user identity, asynchronous operations, SOP class
negotiation), are therefore served here instead: the request is decoded and negotiated with
pynetdicom's own PDU classes and ``negotiate_as_acceptor`` against the very same AE's supported
contexts, the calling AE passes the same allow-list, every object goes through the same
``receive`` as pynetdicom's C-STORE handler and is answered with the same statuses. Everything
else (Q/R, worklist, MPPS, C-GET's role selection) stays with pynetdicom, which reads the request
itself: the acceptor only peeks at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import (
    AE,
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    AllStoragePresentationContexts,
)
from pynetdicom.pdu import (
    A_ABORT_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
)
from pynetdicom.pdu_primitives import (
    A_ABORT,
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from server.dicom.dimse_codec import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    COMMAND_FIELD,
    MESSAGE_ID,
    command_int,
    command_pdu,
    command_uid,
    file_meta,
    response,
)
from server.dicom.frames import MAX_PDU, Frames, Message
from server.dicom.ingest import Ingest, Upload
from server.dicom.parse import Failure
from server.dicom.peers import Peers
from server.dicom.receive import receive

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
STORAGE_ONLY = frozenset(
    {VERIFICATION, *(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)}
)
_PLAIN_ITEMS = (
    MaximumLengthNotification,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
)

# A-ASSOCIATE-RQs larger than this (hundreds of contexts) are left to pynetdicom.
MAX_PEEK = 64 << 10
PEEK_TIMEOUT_S = 10.0
# An association that sends nothing for this long while we wait for it is closed.
NETWORK_TIMEOUT_S = 60.0
IDLE_CHECK_S = 5.0
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
C_CANCEL_RQ = 0x0FFF
PREAMBLE = bytes(128) + b"DICM"


def peek_request(sock: socket.socket) -> bytes | None:
    """The whole A-ASSOCIATE-RQ PDU, read without consuming it, or None if it is not one.

    MSG_PEEK leaves the bytes in the kernel, so pynetdicom still reads the request itself when
    the association is not ours.
    """
    previous = sock.gettimeout()
    deadline = time.monotonic() + PEEK_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(MAX_PEEK + 6, socket.MSG_PEEK)
            if not data or data[0] != 0x01:
                return None
            if len(data) >= 6:
                length = int.from_bytes(data[2:6], "big")
                if length > MAX_PEEK:
                    return None
                if len(data) >= length + 6:
                    return data[: length + 6]
            time.sleep(0.001)
        return None
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous)


def storage_request(data: bytes) -> A_ASSOCIATE | None:
    """The decoded request if it is one the lean path serves, else None."""
    try:
        pdu = A_ASSOCIATE_RQ()
        pdu.decode(data)
        request = pdu.to_primitive()
    except Exception:
        return None
    contexts = request.presentation_context_definition_list
    if not contexts or any(str(cx.abstract_syntax) not in STORAGE_ONLY for cx in contexts):
        return None
    if any(not isinstance(item, _PLAIN_ITEMS) for item in request.user_information):
        return None
    return request


class LeanStorage:
    """Serves handed-over storage associations as tasks on ``loop``."""

    def __init__(
        self,
        ae: AE,
        ingest: Ingest,
        peers: Peers,
        loop: asyncio.AbstractEventLoop,
        max_associations: int,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self._ae = ae
        self._ingest = ingest
        self._peers = peers
        self._loop = loop
        self._max = max_associations
        self._on_finished = on_finished
        self._tasks: set[asyncio.Task[None]] = set()

    def hand_over(self, sock: socket.socket, request: A_ASSOCIATE, raw_request: bytes) -> None:
        """Thread-safe: take over a connection whose request was peeked, not yet read."""
        self._loop.call_soon_threadsafe(self.take, sock, request, raw_request)

    def take(self, sock: socket.socket, request: A_ASSOCIATE, raw_request: bytes) -> None:
        """On the loop: serve a connection whose request was peeked, not yet read."""
        task = self._loop.create_task(
            self._serve(sock, request, len(raw_request)), name="dicom-lean"
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._on_finished is not None:
            self._on_finished()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self, sock: socket.socket, request: A_ASSOCIATE, consumed: int) -> None:
        sock.setblocking(False)
        try:
            _transport, frames = await self._loop.connect_accepted_socket(
                lambda: Frames(consumed), sock=sock
            )
        except OSError:
            sock.close()
            return
        try:
            await _Link(self, frames, request).run()
        except (OSError, TimeoutError):
            pass
        except Exception:
            log.exception("a storage association failed")
        finally:
            frames.close()


class _Link:
    """One storage association: negotiation, then C-STORE/C-ECHO until release or abort."""

    def __init__(self, lean: LeanStorage, frames: Frames, request: A_ASSOCIATE) -> None:
        self._lean = lean
        self._frames = frames
        self._request = request
        self._host = frames.peer_host
        self._calling_ae = str(request.calling_ae_title or "").strip()
        self._contexts: dict[int, PresentationContext] = {}
        self._upload: Upload | None = None
        self._facility = ""
        self._released = False

    async def run(self) -> None:
        if not await self._negotiate():
            return
        try:
            await self._serve()
        finally:
            if self._upload is not None:
                await self._lean._ingest.close(self._upload, aborted=not self._released)

    async def _negotiate(self) -> bool:
        request = self._request
        try:
            admission = await self._lean._peers.admit(self._calling_ae, self._host)
        except Exception:
            log.exception("checking the DICOM allow-list failed")
            admission = None
        if admission is None or not admission.accepted or admission.facility is None:
            log.warning("rejected DICOM association from %r at %s", self._calling_ae, self._host)
            # Permanent rejection, service user, calling AE title not recognised.
            self._reject(0x01, 0x01, 0x03)
            return False
        if str(request.application_context_name) != APPLICATION_CONTEXT_NAME:
            self._reject(0x01, 0x01, 0x02)
            return False
        if len(self._lean._tasks) > self._lean._max:
            # Transient rejection, service provider (presentation), local limit exceeded.
            self._reject(0x02, 0x03, 0x02)
            return False
        self._facility = admission.facility
        result, _roles = negotiate_as_acceptor(
            request.presentation_context_definition_list, self._lean._ae.supported_contexts, {}
        )
        self._contexts = {int(cx.context_id or 0): cx for cx in result if cx.result == 0x00}
        self._frames.accepted = set(self._contexts)
        accept = A_ASSOCIATE()
        accept.application_context_name = APPLICATION_CONTEXT_NAME
        accept.calling_ae_title = request.calling_ae_title
        accept.called_ae_title = request.called_ae_title
        accept.result = 0x00
        accept.result_source = 0x01
        accept.presentation_context_definition_results_list = result
        accept.user_information = self._acceptor_information()
        pdu = A_ASSOCIATE_AC()
        pdu.from_primitive(accept)
        self._frames.write(pdu.encode())
        return True

    @staticmethod
    def _acceptor_information() -> list[Any]:
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = MAX_PDU
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
        return [maximum, implementation, version]

    def _reject(self, result: int, source: int, reason: int) -> None:
        reject = A_ASSOCIATE()
        reject.result = result
        reject.result_source = source
        reject.diagnostic = reason
        pdu = A_ASSOCIATE_RJ()
        pdu.from_primitive(reject)
        self._frames.write(pdu.encode())

    def _abort(self) -> None:
        abort = A_ABORT()
        abort.abort_source = 0x00
        pdu = A_ABORT_RQ()
        pdu.from_primitive(abort)
        self._frames.write(pdu.encode())

    async def _serve(self) -> None:
        while True:
            message = await self._next()
            if message.kind == "release":
                self._frames.write(A_RELEASE_RP().encode())
                self._released = True
                return
            if message.kind in ("abort", "closed"):
                return
            if message.kind == "error":
                log.warning(
                    "aborting a storage association from %r: %s", self._calling_ae, message.reason
                )
                self._abort()
                return
            if not await self._answer(message.command, message.context_id, message.data):
                self._abort()
                return

    async def _next(self) -> Message:
        """The next message; only time the peer spends sending nothing counts as idle."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(IDLE_CHECK_S):
                    return await self._frames.next()
            except TimeoutError:
                if loop.time() - self._frames.idle_since > NETWORK_TIMEOUT_S:
                    raise

    async def _answer(
        self, request: dict[int, bytes], context_id: int, data: list[bytes] | None
    ) -> bool:
        """Answer one command; False for a command a storage association must not send."""
        field = command_int(request, COMMAND_FIELD)
        message_id = command_int(request, MESSAGE_ID) or 0
        sop_class = command_uid(request, AFFECTED_SOP_CLASS)
        if field == C_ECHO_RQ:
            reply = response(C_ECHO_RSP, message_id, VERIFICATION, None, 0x0000)
        elif field == C_STORE_RQ:
            sop_uid = command_uid(request, AFFECTED_SOP_INSTANCE)
            status = (
                await self._store(context_id, sop_class, sop_uid, data)
                if data is not None
                else Failure.CANNOT_UNDERSTAND.value
            )
            reply = response(C_STORE_RSP, message_id, sop_class, sop_uid, status)
        elif field == C_CANCEL_RQ:
            return True
        else:
            log.warning("aborting a storage association: command %r", field)
            return False
        self._frames.write(command_pdu(context_id, reply))
        return True

    async def _store(self, context_id: int, sop_class: str, sop_uid: str, data: list[bytes]) -> int:
        ingest = self._lean._ingest
        try:
            if self._upload is None:
                upload = Upload(self._facility, "dimse", self._calling_ae, self._host)
                self._upload = await ingest.open(upload)
            syntax = str(self._contexts[context_id].transfer_syntax[0])
            raw = b"".join([PREAMBLE, file_meta(sop_class, sop_uid, syntax), *data])
        except Exception:
            log.exception("receiving a C-STORE data set failed")
            return Failure.OUT_OF_RESOURCES.value
        return await receive(ingest, self._upload, raw, sop_uid, sop_class)

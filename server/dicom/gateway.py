"""The DIMSE gateway: pynetdicom SCPs for verification, storage, Q/R, worklist and MPPS.

pynetdicom runs every association in its own thread. The handlers here are the one seam to that
threaded stack: they do thread-safe CPU work (vetting a received object's header), hand
everything that touches the store or the hub to the event loop with
``run_coroutine_threadsafe``, and return a DIMSE status. Any exception in our code becomes a
failure status for that one request; the association lives on.

Associations that only store (and echo) never reach pynetdicom's association machinery: the
acceptor peeks at their A-ASSOCIATE-RQ and hands them to a gateway worker process
(``workers.py``) or, with none, to the lean path on the event loop (``lean.py``); every receiver
stores through the same ``receive.receive``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.presentation import build_context
from pynetdicom.transport import ThreadedAssociationServer

from server.dicom.archive import Archive
from server.dicom.ingest import Ingest, Upload
from server.dicom.lean import LeanStorage, peek_request, storage_request
from server.dicom.matching import Level, QueryError
from server.dicom.mpps import PROCESSING_FAILURE, Mpps
from server.dicom.parse import Failure
from server.dicom.peers import Peers
from server.dicom.query import Search, search
from server.dicom.receive import receive
from server.dicom.workers import Workers
from server.dicom.worklist import Worklist, restrict, to_dataset
from server.store.database import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

# SOP classes served besides storage (pynetdicom builds its named constants dynamically).
Verification = "1.2.840.10008.1.1"
PatientRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.1.1"
PatientRootQueryRetrieveInformationModelMove = "1.2.840.10008.5.1.4.1.2.1.2"
PatientRootQueryRetrieveInformationModelGet = "1.2.840.10008.5.1.4.1.2.1.3"
StudyRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.2.1"
StudyRootQueryRetrieveInformationModelMove = "1.2.840.10008.5.1.4.1.2.2.2"
StudyRootQueryRetrieveInformationModelGet = "1.2.840.10008.5.1.4.1.2.2.3"
ModalityWorklistInformationFind = "1.2.840.10008.5.1.4.31"
ModalityPerformedProcedureStep = "1.2.840.10008.3.1.2.3.3"

# pynetdicom's threads and the event loop hand every object to each other; with CPython's
# default 5 ms GIL switch interval each hand-off can wait a full interval behind a busy thread.
# 0.5 ms measured ~20 % more images/s on one association (load-tests/bench_ingest.py).
GIL_SWITCH_INTERVAL_S = 0.0005

# Bounds on how long an association thread waits for the event loop.
STORE_TIMEOUT_S = 120.0
QUERY_TIMEOUT_S = 60.0

SUCCESS = 0x0000
PENDING = 0xFF00
CANCELLED = 0xFE00
FIND_UNABLE = 0xC000
FIND_IDENTIFIER_INVALID = 0xA900
MOVE_UNKNOWN_DESTINATION = 0xA801
RETRIEVE_UNABLE = 0xC000

_FIND_MODELS = {
    PatientRootQueryRetrieveInformationModelFind: "PATIENT_ROOT",
    StudyRootQueryRetrieveInformationModelFind: "STUDY_ROOT",
}
_LEVELS: dict[str, Level] = {
    "PATIENT": "PATIENT",
    "STUDY": "STUDY",
    "SERIES": "SERIES",
    "IMAGE": "IMAGE",
}


@dataclass
class Session:
    """What we know about one association; touched from its thread and from the loop."""

    facility: str
    calling_ae: str
    remote: str
    upload: Upload | None = None
    released: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class GatewayServices:
    store: Store
    ingest: Ingest
    archive: Archive
    peers: Peers
    worklist: Worklist
    mpps: Mpps


def _request_value(event: evt.Event, name: str) -> str:
    return str(getattr(event.request, name, None) or "").strip()


def identifier_keys(identifier: Dataset) -> dict[str, str]:
    """Top-level query keys as strings ('' for universal matching); sequences are skipped."""
    keys: dict[str, str] = {}
    for element in identifier:
        if element.VR == "SQ" or not element.keyword:
            continue
        value = element.value
        if value is None:
            keys[element.keyword] = ""
        elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            keys[element.keyword] = "\\".join(str(v) for v in value)
        else:
            keys[element.keyword] = str(value)
    return keys


def answer(identifier: Dataset, body: dict[str, Any], level: str) -> Dataset:
    """The C-FIND response: exactly the requested keys, filled from the matched record."""
    found = Dataset.from_json(body)
    response = Dataset()
    response.QueryRetrieveLevel = level
    if "SpecificCharacterSet" in found:
        response.SpecificCharacterSet = found.SpecificCharacterSet
    for element in identifier:
        if element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        if element.tag in found:
            response.add(found[element.tag])
        else:
            response.add_new(element.tag, element.VR, None)
    return response


class SortingServer(ThreadedAssociationServer):
    """Sends storage-only associations to a gateway worker process (``workers.py``) or, with
    none, to the lean path (``lean.py``); all others to pynetdicom."""

    lean: LeanStorage | None = None
    workers: Workers | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the connection's own thread, so peeking at the request blocks no one."""
        if self.lean is not None and isinstance(request, socket.socket):
            raw = peek_request(request)
            decoded = storage_request(raw) if raw is not None else None
            if raw is not None and decoded is not None:
                # The socketserver closes ``request`` afterwards; the receiver owns the fd.
                connection = socket.socket(fileno=request.detach())
                if self.workers is None or not self.workers.hand_over(connection):
                    self.lean.hand_over(connection, decoded, raw)
                return
        super().finish_request(request, client_address)


def build_ae(ae_title: str) -> AE:
    """The gateway's AE: what it accepts, for pynetdicom and for the lean path's negotiation."""
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = 32
    ae.maximum_pdu_size = 0
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(
            str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES, scp_role=True, scu_role=False
        )
    for model in (
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
        ModalityWorklistInformationFind,
        ModalityPerformedProcedureStep,
    ):
        ae.add_supported_context(model)
    return ae


class Gateway:
    def __init__(
        self,
        services: GatewayServices,
        loop: asyncio.AbstractEventLoop,
        ae_title: str,
        host: str,
        port: int,
        workers: Workers | None = None,
    ) -> None:
        self._services = services
        self._loop = loop
        self._sessions: dict[int, Session] = {}
        self._sessions_lock = threading.Lock()
        self._server: ThreadedAssociationServer | None = None
        self.ae = build_ae(ae_title)
        self._workers = workers
        self._lean = LeanStorage(
            self.ae, services.ingest, services.peers, loop, self.ae.maximum_associations
        )
        self.address = (host, port)

    def start(self) -> int:
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_CONN_CLOSE, self._on_closed),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_N_CREATE, self._on_n_create),
            (evt.EVT_N_SET, self._on_n_set),
        ]
        server = self.ae.make_server(
            self.address, evt_handlers=handlers, server_class=SortingServer
        )
        self.ae._servers.append(server)
        if isinstance(server, SortingServer):
            server.lean = self._lean
            server.workers = self._workers
        threading.Thread(target=server.serve_forever, name="dicom-acceptor", daemon=True).start()
        self._server = server
        port = int(server.server_address[1])
        log.info("DICOM gateway listening", extra={"ae_title": self.ae.ae_title, "port": port})
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.ae.shutdown()
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._lean.stop(), self._loop).result(QUERY_TIMEOUT_S)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _session(self, event: evt.Event) -> Session | None:
        with self._sessions_lock:
            return self._sessions.get(id(event.assoc))

    # Association life cycle -----------------------------------------------------------------

    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling_ae = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        host = str(assoc.requestor.address)
        try:
            admission = self._run(self._services.peers.admit(calling_ae, host), QUERY_TIMEOUT_S)
        except Exception:
            log.exception("checking the DICOM allow-list failed")
            admission = None
        if admission is None or not admission.accepted or admission.facility is None:
            log.warning("rejected DICOM association from %r at %s", calling_ae, host)
            # Permanent rejection, service user, calling AE title not recognised.
            assoc.acse.send_reject(0x01, 0x01, 0x03)
            assoc.is_rejected = True
            assoc.is_established = False
            return
        with self._sessions_lock:
            self._sessions[id(assoc)] = Session(admission.facility, calling_ae, host)

    def _on_released(self, event: evt.Event) -> None:
        session = self._session(event)
        if session is not None:
            session.released = True

    def _on_closed(self, event: evt.Event) -> None:
        with self._sessions_lock:
            session = self._sessions.pop(id(event.assoc), None)
        if session is None or session.upload is None:
            return
        try:
            self._run(
                self._services.ingest.close(session.upload, aborted=not session.released),
                QUERY_TIMEOUT_S,
            )
        except Exception:
            log.exception("closing an upload failed")

    def _upload(self, session: Session) -> Upload:
        with session.lock:
            if session.upload is None:
                upload = Upload(session.facility, "dimse", session.calling_ae, session.remote)
                session.upload = self._run(self._services.ingest.open(upload), QUERY_TIMEOUT_S)
            return session.upload

    # Services -------------------------------------------------------------------------------

    def _on_echo(self, event: evt.Event) -> int:
        return SUCCESS

    def _on_store(self, event: evt.Event) -> int:
        session = self._session(event)
        if session is None:
            return Failure.OUT_OF_RESOURCES.value
        try:
            upload = self._upload(session)
        except Exception:
            log.exception("opening an upload failed")
            return Failure.OUT_OF_RESOURCES.value
        try:
            raw = event.encoded_dataset()
            return self._run(
                receive(
                    self._services.ingest,
                    upload,
                    raw,
                    _request_value(event, "AffectedSOPInstanceUID"),
                    _request_value(event, "AffectedSOPClassUID"),
                ),
                STORE_TIMEOUT_S,
            )
        except Exception:
            log.exception("storing a C-STORE data set failed")
            return Failure.OUT_OF_RESOURCES.value

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        session = self._session(event)
        model = _request_value(event, "AffectedSOPClassUID")
        try:
            identifier = event.identifier
        except Exception:
            yield FIND_IDENTIFIER_INVALID, None
            return
        if session is None:
            yield FIND_UNABLE, None
            return
        if model == ModalityWorklistInformationFind:
            yield from self._worklist_find(event, identifier, session)
            return
        level = _LEVELS.get(str(identifier.get("QueryRetrieveLevel", "")).strip())
        if level is None or (level == "PATIENT" and _FIND_MODELS.get(model) == "STUDY_ROOT"):
            yield FIND_IDENTIFIER_INVALID, None
            return
        keys = identifier_keys(identifier)
        try:
            bodies = self._run(self._search(Search(level, keys, session.facility)), QUERY_TIMEOUT_S)
        except QueryError:
            yield FIND_IDENTIFIER_INVALID, None
            return
        except Exception:
            log.exception("C-FIND failed")
            yield FIND_UNABLE, None
            return
        for body in bodies:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield PENDING, answer(identifier, body, level)
        yield SUCCESS, None

    def _worklist_find(
        self, event: evt.Event, identifier: Dataset, session: Session
    ) -> Iterator[tuple[int, Dataset | None]]:
        keys = identifier_keys(identifier)
        steps = identifier.get("ScheduledProcedureStepSequence") or []
        if steps:
            keys.update(identifier_keys(steps[0]))
        try:
            docs = self._run(self._services.worklist.find(keys, session.facility), QUERY_TIMEOUT_S)
        except QueryError:
            yield FIND_IDENTIFIER_INVALID, None
            return
        except Exception:
            log.exception("worklist C-FIND failed")
            yield FIND_UNABLE, None
            return
        for doc in docs:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield PENDING, restrict(identifier, to_dataset(doc))
        yield SUCCESS, None

    def _matches(self, identifier: Dataset, session: Session) -> list[str]:
        keys = {
            k: v
            for k, v in identifier_keys(identifier).items()
            if k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        }
        if not any(keys.values()):
            raise QueryError("a retrieve must name a patient, study, series or instance")
        bodies = self._run(self._search(Search("IMAGE", keys, session.facility)), QUERY_TIMEOUT_S)
        return [str(body["00080018"]["Value"][0]) for body in bodies]

    def _load(self, sop_uid: str, session: Session) -> Dataset:
        raw = self._run(
            self._services.archive.instance_bytes(sop_uid, session.facility), QUERY_TIMEOUT_S
        )
        return dcmread(io.BytesIO(raw))

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        session = self._session(event)
        if session is None:
            yield None, None
            return
        destination = event.move_destination
        name = (
            destination.decode(errors="replace")
            if isinstance(destination, bytes)
            else str(destination or "")
        )
        peer = self._run(
            self._services.peers.destination(name.strip(), session.facility), QUERY_TIMEOUT_S
        )
        if peer is None:
            log.warning("C-MOVE to unknown destination %r", name)
            yield None, None
            return
        try:
            uids = self._matches(event.identifier, session)
        except QueryError:
            yield peer.host, peer.port
            yield FIND_IDENTIFIER_INVALID, None
            return
        except Exception:
            log.exception("C-MOVE query failed")
            yield peer.host, peer.port
            yield RETRIEVE_UNABLE, None
            return
        docs = self._run(self._instance_docs(uids), QUERY_TIMEOUT_S)
        contexts = sorted({(d["sop_class_uid"], d["transfer_syntax"]) for d in docs})
        requested = [
            build_context(sop_class, [syntax, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
            for sop_class, syntax in contexts
        ][:128]
        yield peer.host, peer.port, {"contexts": requested}
        yield from self._send(event, uids, session)

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        session = self._session(event)
        if session is None:
            yield 0
            return
        try:
            uids = self._matches(event.identifier, session)
        except QueryError:
            yield FIND_IDENTIFIER_INVALID, None
            return
        except Exception:
            log.exception("C-GET query failed")
            yield RETRIEVE_UNABLE, None
            return
        yield from self._send(event, uids, session)

    def _send(self, event: evt.Event, uids: list[str], session: Session) -> Iterator[Any]:
        yield len(uids)
        for uid in uids:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            try:
                dataset = self._load(uid, session)
            except Exception:
                log.exception("loading %s for a retrieve failed", uid)
                yield RETRIEVE_UNABLE, None
                return
            yield PENDING, dataset

    async def _search(self, request: Search) -> list[dict[str, Any]]:
        await self._services.ingest.settled()
        return await search(self._services.store, request)

    async def _instance_docs(self, uids: list[str]) -> list[dict[str, Any]]:
        docs = []
        for uid in uids:
            docs.append(await self._services.archive.instance(uid))
        return docs

    def _on_n_create(self, event: evt.Event) -> tuple[int, Dataset | None]:
        session = self._session(event)
        if (
            session is None
            or _request_value(event, "AffectedSOPClassUID") != ModalityPerformedProcedureStep
        ):
            return PROCESSING_FAILURE, None
        uid = _request_value(event, "AffectedSOPInstanceUID")
        try:
            attributes = event.attribute_list
            outcome = self._run(
                self._services.mpps.create(uid, attributes, session.facility), QUERY_TIMEOUT_S
            )
        except Exception:
            log.exception("MPPS N-CREATE failed")
            return PROCESSING_FAILURE, None
        if outcome.status != SUCCESS:
            log.warning("MPPS N-CREATE refused: %s", outcome.reason)
            return outcome.status, None
        return SUCCESS, attributes

    def _on_n_set(self, event: evt.Event) -> tuple[int, Dataset | None]:
        session = self._session(event)
        if session is None:
            return PROCESSING_FAILURE, None
        uid = _request_value(event, "RequestedSOPInstanceUID")
        try:
            changes = event.modification_list
            outcome = self._run(
                self._services.mpps.update(uid, changes, session.facility), QUERY_TIMEOUT_S
            )
        except Exception:
            log.exception("MPPS N-SET failed")
            return PROCESSING_FAILURE, None
        if outcome.status != SUCCESS:
            log.warning("MPPS N-SET refused: %s", outcome.reason)
            return outcome.status, None
        return SUCCESS, changes

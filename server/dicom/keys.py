"""Typed app keys of the archive's services, apart from ``ARCHIVE`` (in ``archive.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.dicom.gateway import Gateway
from server.dicom.ingest import Ingest
from server.dicom.mpps import Mpps
from server.dicom.peers import Peers
from server.dicom.qido_cache import QidoCache
from server.dicom.workers import Workers
from server.dicom.worklist import Worklist


@dataclass(frozen=True)
class DicomOptions:
    """Knobs for tests and benchmarks that are not operator settings."""

    stable_after_s: float = 30.0


DICOM_OPTIONS = web.AppKey("dicom_options", DicomOptions)
INGEST = web.AppKey("dicom_ingest", Ingest)
PEERS = web.AppKey("dicom_peers", Peers)
WORKLIST = web.AppKey("dicom_worklist", Worklist)
MPPS = web.AppKey("dicom_mpps", Mpps)
GATEWAY_PORT = web.AppKey("dicom_gateway_port", int)
GATEWAY = web.AppKey("dicom_gateway", Gateway)
GATEWAY_WORKERS = web.AppKey("dicom_gateway_workers", Workers)
QIDO_CACHE = web.AppKey("dicom_qido_cache", QidoCache)

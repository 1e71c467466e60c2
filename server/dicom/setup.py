"""Wiring the archive into the app: one cleanup context that opens and closes all of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import BLOBS, HUB, SETTINGS, STORE
from server.dicom import index, ingest, peers, worklist
from server.dicom.archive import ARCHIVE, Archive
from server.dicom.dicomweb import routes as dicomweb_routes
from server.dicom.gateway import Gateway, GatewayServices
from server.dicom.index import IndexWriter
from server.dicom.ingest import Ingest
from server.dicom.keys import (
    DICOM_OPTIONS,
    GATEWAY_PORT,
    INGEST,
    MPPS,
    PEERS,
    WORKLIST,
    DicomOptions,
)
from server.dicom.mpps import Mpps
from server.dicom.peers import Peers
from server.dicom.routes import routes as admin_routes
from server.dicom.worklist import Worklist

log = logging.getLogger(__name__)

INDEXES = [*index.INDEXES, *ingest.INDEXES, *peers.INDEXES, *worklist.INDEXES]


def setup_dicom(app: web.Application) -> None:
    async def dicom_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        options = app.get(DICOM_OPTIONS) or DicomOptions()
        store = app[STORE]
        archive = Archive(store, app[BLOBS])
        service = Ingest(
            store, IndexWriter(store, app[BLOBS]), app[HUB], stable_after_s=options.stable_after_s
        )
        allow = Peers(store, allow_open=not settings.production)
        steps = Worklist(store)
        mpps = Mpps(store, app[HUB], steps)
        app[ARCHIVE] = archive
        app[INGEST] = service
        app[PEERS] = allow
        app[WORKLIST] = steps
        app[MPPS] = mpps
        service.start()
        gateway: Gateway | None = None
        if settings.dicom_enabled:
            gateway = Gateway(
                GatewayServices(store, service, archive, allow, steps, mpps),
                asyncio.get_running_loop(),
                settings.dicom_ae_title,
                settings.http_host,
                settings.dicom_port,
            )
            app[GATEWAY_PORT] = await asyncio.to_thread(gateway.start)
        try:
            yield
        finally:
            if gateway is not None:
                await asyncio.to_thread(gateway.stop)
            await service.stop()

    app.cleanup_ctx.append(dicom_ctx)
    app.add_routes(admin_routes)
    app.add_routes(dicomweb_routes)

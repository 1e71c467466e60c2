"""Wiring the archive into the app: one cleanup context that opens and closes all of it."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import BLOBS, HUB, SETTINGS, STORE
from server.dicom import index, ingest, peers, relay, worklist
from server.dicom.archive import ARCHIVE, Archive
from server.dicom.dicomweb import routes as dicomweb_routes
from server.dicom.gateway import GIL_SWITCH_INTERVAL_S, Gateway, GatewayServices
from server.dicom.index import IndexWriter
from server.dicom.ingest import Ingest, StabilityWatcher
from server.dicom.keys import (
    DICOM_OPTIONS,
    GATEWAY,
    GATEWAY_PORT,
    GATEWAY_WORKERS,
    INGEST,
    MPPS,
    PEERS,
    QIDO_CACHE,
    WORKLIST,
    DicomOptions,
)
from server.dicom.mpps import Mpps
from server.dicom.peers import Peers
from server.dicom.qido_cache import QidoCache
from server.dicom.relay import RelayTail
from server.dicom.routes import routes as admin_routes
from server.dicom.worker import config_line
from server.dicom.workers import Workers
from server.dicom.worklist import Worklist

log = logging.getLogger(__name__)

INDEXES = [*index.INDEXES, *ingest.INDEXES, *peers.INDEXES, *relay.INDEXES, *worklist.INDEXES]


def setup_dicom(app: web.Application) -> None:
    async def dicom_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        options = app.get(DICOM_OPTIONS) or DicomOptions()
        store = app[STORE]
        archive = Archive(store, app[BLOBS])
        service = Ingest(store, IndexWriter(store, app[BLOBS]), app[HUB])
        stability = StabilityWatcher(app[HUB], options.stable_after_s)
        allow = Peers(store, allow_open=not settings.production)
        steps = Worklist(store)
        mpps = Mpps(store, app[HUB], steps)
        app[ARCHIVE] = archive
        app[QIDO_CACHE] = QidoCache(app[HUB])
        service.on_change(app[QIDO_CACHE].invalidate)
        app[INGEST] = service
        app[PEERS] = allow
        app[WORKLIST] = steps
        app[MPPS] = mpps
        service.start()
        stability.start()
        relayed = RelayTail(store, app[HUB])
        relayed.start()
        workers = Workers(app[HUB])
        app[GATEWAY_WORKERS] = workers
        gateway: Gateway | None = None
        switch_interval = sys.getswitchinterval()
        if settings.dicom_enabled:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
            gateway = Gateway(
                GatewayServices(store, service, archive, allow, steps, mpps),
                asyncio.get_running_loop(),
                settings.dicom_ae_title,
                settings.http_host,
                settings.dicom_port,
                workers,
            )
            port = await asyncio.to_thread(gateway.start)
            app[GATEWAY] = gateway
            app[GATEWAY_PORT] = port
            config = config_line(
                mongo_url=store.url,
                mongo_db=settings.mongo_db,
                blob_backend=settings.blob_backend,
                blob_root=settings.data_dir / "blobs",
                ae_title=settings.dicom_ae_title,
                allow_open=allow.allow_open,
            )
            try:
                await workers.start(settings.dicom_workers, config)
            except BaseException:
                await workers.stop()
                await asyncio.to_thread(gateway.stop)
                await relayed.stop()
                sys.setswitchinterval(switch_interval)
                raise
        try:
            yield
        finally:
            if gateway is not None:
                await asyncio.to_thread(gateway.stop)
            await workers.stop()
            await relayed.stop()
            await service.stop()
            await stability.stop()
            sys.setswitchinterval(switch_interval)
            app[QIDO_CACHE].close()

    app.cleanup_ctx.append(dicom_ctx)
    app.add_routes(admin_routes)
    app.add_routes(dicomweb_routes)

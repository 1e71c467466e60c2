"""Typed keys for the resources the composition root puts on the aiohttp app."""

from __future__ import annotations

from aiohttp import web

from server.config import Settings
from server.hub import EventHub
from server.store.blobs import BlobStore
from server.store.database import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BLOBS = web.AppKey("blobs", BlobStore)
HUB = web.AppKey("hub", EventHub)
TRUST_PROXY = web.AppKey("trust_proxy", bool)

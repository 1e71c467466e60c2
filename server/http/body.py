"""Reading request bodies: JSON only, bounded, validated against the catalog before use."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.http.errors import ApiError
from shared.protocol import catalog


async def read_json(request: web.Request, request_name: str) -> dict[str, Any]:
    """Return the validated body of a catalog request, or raise a clear 4xx ``ApiError``."""
    if request.content_type != "application/json":
        raise ApiError("unsupported_media_type", "Send the body as application/json.")
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError("invalid_json", f"The body is not valid JSON: {exc}") from None
    catalog().validate_request(request_name, body)
    if not isinstance(body, dict):
        raise ApiError("validation_failed", "The body must be a JSON object.")
    return body


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError("bad_request", f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError("bad_request", f"{name} must be between {lo} and {hi}")
    return value

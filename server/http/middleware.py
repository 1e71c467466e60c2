"""The HTTP edge: request ids, JSON errors for every 4xx/5xx, security headers, access logs."""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.appkeys import TRUST_PROXY
from server.http.errors import ApiError
from shared.protocol import ProtocolError

log = logging.getLogger("noctis.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)

# A random per-process prefix and a counter: as unique as a uuid4 in the logs, without reading
# the OS's random source on every request (a measurable part of a cached frame's cost).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)

_STATUS_CODES = {
    400: "bad_request",
    401: "auth_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "service_unavailable",
}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: ids, timing and the one error boundary for every route."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = (
        incoming
        if 0 < len(incoming) <= 64 and incoming.isprintable()
        else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    )
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as exc:
        response = web.Response(
            status=exc.status,
            text=json.dumps(exc.as_payload()),
            content_type="application/json",
            headers=exc.headers,
        )
    except ProtocolError as exc:
        response = web.Response(
            status=422 if exc.code == "validation_failed" else 400,
            text=json.dumps(exc.as_payload()),
            content_type="application/json",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(
            exc.status, "bad_request" if exc.status < 500 else "internal_error"
        )
        message = exc.reason if exc.status != 413 else "The request body is larger than allowed."
        response = json_error(exc.status, code, message, headers=_passthrough_headers(exc))
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id, "path": request.path})
        response = json_error(500, "internal_error", "Something went wrong on the server.")
    response.headers["X-Request-Id"] = request_id
    if log.isEnabledFor(logging.INFO):
        _log_access(request, response, request_id, started)
    return response


def _log_access(
    request: web.Request, response: web.StreamResponse, request_id: str, started: float
) -> None:
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status,
        extra={
            "request_id": request_id,
            "status": response.status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "remote": request.remote,
        },
    )


def _passthrough_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in {"Allow", "Retry-After"}}


def _behind_tls(request: web.Request) -> bool:
    if request.secure:
        return True
    trusted = request.app.get(TRUST_PROXY, False)
    return bool(trusted) and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    if _behind_tls(request):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    return response

"""Who is calling an HTTP route, and may they: the one check every protected route makes."""

from __future__ import annotations

from aiohttp import web

from server.appkeys import TRUST_PROXY
from server.auth.roles import Permission
from server.auth.service import AuthService, Principal
from server.http.errors import ApiError

AUTH_SERVICE = web.AppKey("auth_service", AuthService)
PRINCIPAL = web.RequestKey("principal", Principal)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            "auth_required",
            "Send an access token as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": 'Bearer realm="noctis"'},
        )
    return token.strip()


async def authenticate(request: web.Request) -> Principal:
    cached = request.get(PRINCIPAL)
    if isinstance(cached, Principal):
        return cached
    principal = await request.app[AUTH_SERVICE].authenticate(bearer_token(request))
    request[PRINCIPAL] = principal
    return principal


async def require(request: web.Request, permission: Permission) -> Principal:
    principal = await authenticate(request)
    if not principal.can(permission):
        await request.app[AUTH_SERVICE].audit.record(
            actor=principal.username,
            action=f"denied:{permission.value}",
            outcome="denied",
            target=request.path,
            remote=client_address(request),
            facility=principal.facility,
        )
        raise ApiError(
            "forbidden", f"Your role ({principal.role.value}) may not {permission.value}."
        )
    return principal


def client_address(request: web.Request) -> str | None:
    """The caller's address; X-Forwarded-For is believed only behind a configured proxy."""
    if request.app.get(TRUST_PROXY, False):
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote

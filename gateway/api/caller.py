"""Who is calling a built-in endpoint: the verified principal, or the API key's network."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.binding import bound_certificate
from gateway.auth.principal import Principal
from gateway.errors import unauthorized
from gateway.keys import AUTH_STATE, STORE
from gateway.requestinfo import INFO
from gateway.store import Network


def caller(request: web.Request) -> Principal:
    principal = request[INFO].principal
    if principal is None:  # the policy must demand a credential for these routes
        raise unauthorized()
    return principal


async def network_for_api_key(request: web.Request) -> Network:
    """The network named by `x-api-key`; 401 "Unauthorized" when missing or unknown."""
    api_key = request.headers.get("x-api-key", "")
    network = await request.app[STORE].network_by_api_key(api_key) if api_key else None
    if network is None:
        raise unauthorized()
    return network


def certificate_binding(request: web.Request, network_id: str) -> str | None:
    """The certificate (hex SHA-256) a credential this request issues to `network_id` is
    bound to under `mtls.bind_tokens` (RFC 8705), else None."""
    info = request[INFO]
    state = request.app[AUTH_STATE]
    return bound_certificate(info.settings.config.mtls.bind_tokens, info.client_cert, state,
                             network_id, state.clock())

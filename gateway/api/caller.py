"""Who is calling a built-in endpoint: the verified principal, or the API key's network."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.errors import unauthorized
from gateway.keys import STORE
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

"""The verified caller of a built-in endpoint (set by the policy gate)."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.errors import unauthorized
from gateway.requestinfo import INFO


def caller(request: web.Request) -> Principal:
    principal = request[INFO].principal
    if principal is None:  # the policy must demand a credential for these routes
        raise unauthorized()
    return principal

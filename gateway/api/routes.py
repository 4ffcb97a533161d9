"""How a handler module declares its endpoints for the route table."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from aiohttp import web

from gateway.policy.routes import Endpoint
from gateway.requestinfo import INFO
from gateway.runtime import Handler


def endpoint(
    methods: str, path: str, handler: Handler,
    *, refusal: Callable[[Exception], Exception] | None = None,
) -> Endpoint[Handler]:
    """`endpoint("GET POST", "/api/v1/admin-token", handle)`; `{name}` segments are
    read back with `path_param`. HEAD is served by GET. `refusal` reshapes the gate's
    refusal for endpoints whose protocol defines its own errors."""
    return Endpoint(path, frozenset(methods.split()), handler, name=handler.__name__,
                    refusal=refusal)


def path_param(request: web.Request, name: str) -> str:
    """The value of the `{name}` segment of the endpoint's path (still percent-encoded
    as normalised, decoded here)."""
    return unquote(request[INFO].params[name])

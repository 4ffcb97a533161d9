"""What the gateway learns about one request as it passes through: read by the access
log and the metrics, written by the policy check and the proxy."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.keys import RUNTIME


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    route: str = "unmatched"
    path: str = ""  # normalised path, the one matched and forwarded
    region: str | None = None
    upstream: str | None = None
    principal: Principal | None = None
    bytes_in: int = 0
    warning: str | None = None  # a `Warning` header every response to this request carries
    client_cert: str | None = None  # SHA-256 of the client certificate, when one was presented
    mtls: bool = False  # the matched rule pins client certificates for networks with mTLS on
    mqtt: bool = False  # the matched rule's credential is inside the MQTT CONNECT packet


INFO = web.RequestKey("info", RequestInfo)


def client_address(request: web.Request) -> str | None:
    """Who is calling, seen through `server.trusted_proxies` (see TrustedProxies.client_of)."""
    trusted = request.app[RUNTIME].current.trusted_proxies
    return trusted.client_of(request.remote, request.headers.getall("X-Forwarded-For", []))

"""One typed context per request: made by the front middleware, filled once by the gate,
read by handlers, the proxy, the access log and the metrics.

`settings` is the configuration snapshot taken when the request started: a SIGHUP
reload that lands while the request is in flight does not change what it sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.policy import Rule
from gateway.runtime import Settings
from gateway.tracing.request import RequestTrace


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    settings: Settings
    trace: RequestTrace  # W3C trace context: the trace id logged, the traceparent sent
    route: str = "unmatched"  # the matched rule's name, for logs and metrics
    path: str = ""  # normalised path, the one matched and forwarded
    query: str = ""  # the raw query string, as the client encoded it
    rule: Rule | None = None
    params: Mapping[str, str] = field(default_factory=dict)  # `{name}` segments of endpoints
    region: str | None = None
    upstream: str | None = None
    principal: Principal | None = None
    refusal: str | None = None  # why the credential was refused (decision.Reason)
    bytes_in: int = 0
    warning: str | None = None  # a `Warning` header every response to this request carries
    client_cert: str | None = None  # SHA-256 of the client certificate, when one was presented
    token_in_query: bool = False  # the credential came as `?token=` (never forwarded)


INFO = web.RequestKey("info", RequestInfo)


def request_settings(request: web.Request) -> Settings:
    """The snapshot this request was started with."""
    return request[INFO].settings


def client_address(request: web.Request) -> str | None:
    """Who is calling, seen through `server.trusted_proxies` (see TrustedProxies.client_of)."""
    info: RequestInfo | None = request.get(INFO)
    if info is None:
        return request.remote
    return info.settings.trusted_proxies.client_of(
        request.remote, request.headers.getall("X-Forwarded-For", []))


def request_scheme(request: web.Request) -> str:
    """`https` when the request came over TLS, directly or through a trusted proxy that
    says so in `X-Forwarded-Proto`; else `http`."""
    if request.secure:
        return "https"
    info: RequestInfo | None = request.get(INFO)
    if info is not None and info.settings.trusted_proxies.trusts(request.remote):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            return proto
    return "http"


def stamp(response: web.StreamResponse, info: RequestInfo) -> None:
    """The headers every answer to a request carries, set in one place before it is sent:
    `X-Request-Id`, and `Warning` for a superseded admin token."""
    response.headers["X-Request-Id"] = info.request_id
    if info.warning:
        response.headers["Warning"] = info.warning

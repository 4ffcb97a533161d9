"""Forward one HTTP request to an upstream of its region and stream the answer back.

Small bodies (both directions) take a fast path: read whole, sent in one write.
Anything larger, or of unknown length, is streamed chunk by chunk so memory stays
flat whatever the size. A request is retried on the next upstream when the first
could not be connected to (nothing was sent), or, for idempotent methods with a
replayable body, when the connection failed after sending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.auth.tokens import bearer_token
from gateway.errors import GatewayError, too_large
from gateway.keys import CLIENT, METRICS, PUSH_HEADERS, TOKENS, UPSTREAMS
from gateway.metrics import Metrics
from gateway.proxy.headers import (
    forwarded_request_headers,
    forwarded_response_fields,
    without_query_parameter,
)
from gateway.proxy.outbound import OutboundRequest
from gateway.proxy.upstream_client import (
    RawFields,
    UpstreamBroken,
    UpstreamPool,
    UpstreamRefused,
    UpstreamTimeout,
    decoded_headers,
)
from gateway.proxy.upstreams import RegionPool, Upstream
from gateway.requestinfo import INFO, stamp
from gateway.runtime import Settings

log = logging.getLogger("gateway.proxy")

SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def upstream_unavailable() -> GatewayError:
    return GatewayError(502, "upstream unavailable")


def upstream_timeout() -> GatewayError:
    return GatewayError(504, "upstream timeout")


class _BodyTooLarge(Exception):
    pass


class _StreamedBody:
    """The client's body as an async iterator that stops at the size limit."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.exceeded = False
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.content.iter_chunked(CHUNK):
            self.sent += len(chunk)
            if self.sent > self._limit:
                self.exceeded = True
                raise _BodyTooLarge
            yield chunk


def upstream_target(request: web.Request) -> str:
    """The normalised path and the query exactly as the client encoded it (a decoded
    query would turn `%20` into a raw space and `%23` into `#`), minus `token` when the
    gateway authenticated the upgrade with it: the credential stops here."""
    info = request[INFO]
    query = info.query
    if info.token_in_query:
        query = without_query_parameter(query, "token")
    return info.path + (f"?{query}" if query else "")


def upstream_request_headers(request: web.Request, settings: Settings) -> CIMultiDict[str]:
    """The client's headers through the outbound filter, with the caller's identity added."""
    info = request[INFO]
    principal = info.principal
    headers = forwarded_request_headers(
        request.headers,
        peer=request.remote,
        scheme=request.scheme,
        host=request.host,
        trusted=settings.trusted_proxies,
        request_id=info.request_id,
        # The gateway's own tokens stop here: upstreams get the identity instead, and a
        # credential they cannot verify is one less secret in their logs.
        drop_authorization=principal is not None or _gateway_issued(request),
        client_cert_header=settings.client_cert_header,
        trace=info.trace,
    )
    if info.client_cert is not None:
        headers["X-Gateway-Client-Cert-Sha256"] = info.client_cert
    if principal is not None:
        headers.update(principal.identity_headers())
        headers["X-Gateway-Push-Events"] = request.app[PUSH_HEADERS].value(
            principal.network_id
        )
    return headers


def _gateway_issued(request: web.Request) -> bool:
    """Whether a bearer token on a public route is one of the gateway's own (its `kid`
    is in the key ring): such a token is never forwarded either."""
    token = bearer_token(request.headers.get("Authorization"))
    return token is not None and request.app[TOKENS].issued_here(token)


async def forward(request: web.Request, settings: Settings) -> web.StreamResponse:
    info = request[INFO]
    config = settings.config
    region = config.regions.for_host(request.host)
    pool = settings.pools[region.name]
    info.region = region.name

    headers = upstream_request_headers(request, settings)
    limit = config.proxy.max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise too_large()
    body: bytes | _StreamedBody | None = None
    if request.body_exists:
        if length is not None and length <= SMALL_BODY:
            body = await request.read()
        else:
            body = _StreamedBody(request, limit)
    info.bytes_in = length or 0

    outbound = OutboundRequest(request.method, upstream_target(request), headers, body)
    upstream_response = await _send(request, pool, outbound)
    try:
        if isinstance(body, _StreamedBody):
            info.bytes_in = body.sent
        return await _relay(request, upstream_response)
    finally:
        upstream_response.release()


async def _send(request: web.Request, pool: RegionPool, outbound: OutboundRequest
                ) -> Relayable:
    info = request[INFO]

    def at(upstream: Upstream) -> None:
        info.upstream = upstream.label

    return await send_upstream(
        outbound, pool=pool, upstreams=request.app[UPSTREAMS], client=request.app[CLIENT],
        metrics=request.app[METRICS], at=at,
    )


async def send_upstream(
    request: OutboundRequest,
    *,
    pool: RegionPool,
    upstreams: UpstreamPool,
    client: aiohttp.ClientSession,
    metrics: Metrics,
    at: Callable[[Upstream], None],
    candidates: Sequence[Upstream] | None = None,
) -> Relayable:
    """Send to the region's upstreams in turn (the failover and retry rules above);
    `at` hears which upstream is being tried, `candidates` replaces the region's own
    order. Raises the contract's 502/504/400/413."""
    for upstream in pool.candidates() if candidates is None else candidates:
        at(upstream)
        started = time.perf_counter()
        try:
            if isinstance(request.body, _StreamedBody) or request.method == "HEAD":
                response: Relayable = await _send_with_aiohttp(client, pool, upstream, request)
            else:
                response = await upstreams.send(
                    upstream.origin, request.head_for(upstream), request.body_bytes,
                    connect_timeout=pool.timeouts.connect, read_timeout=pool.timeouts.read,
                    idempotent=request.method in IDEMPOTENT,
                )
        except Exception as exc:
            failed_over(exc, request, pool=pool, upstream=upstream, metrics=metrics)
            continue
        metrics.observe_upstream(pool.name, upstream.label, "ok", time.perf_counter() - started)
        return response
    raise upstream_unavailable()


def failed_over(exc: Exception, request: OutboundRequest, *, pool: RegionPool,
                upstream: Upstream, metrics: Metrics) -> None:
    """After `upstream` failed with `exc`: return if the next upstream may be tried,
    else raise the answer (502, 504, 413, 408 or 400). Also counts the failure."""
    if isinstance(exc, UpstreamRefused | aiohttp.ClientConnectorError
                  | aiohttp.ConnectionTimeoutError):
        # Nothing was sent: always safe to try the next upstream.
        _count(metrics, pool, upstream, "refused")
        pool.mark_down(upstream)
        log.warning("upstream %s refused: %s", upstream.label, exc)
        return
    if isinstance(exc, UpstreamTimeout | TimeoutError | aiohttp.ServerTimeoutError):
        _count(metrics, pool, upstream, "timeout")
        raise upstream_timeout() from None
    if isinstance(exc, UpstreamBroken | aiohttp.ClientError | _BodyTooLarge | OSError):
        body = request.body
        if isinstance(body, _StreamedBody) and body.exceeded:
            raise too_large() from None
        if isinstance(exc.__cause__, GatewayError):  # the client's body timed out (408)
            raise exc.__cause__ from None
        _count(metrics, pool, upstream, "reset")
        if request.replayable and request.method in IDEMPOTENT:
            log.warning("upstream %s failed, trying the next: %s", upstream.label, exc)
            return
        raise upstream_unavailable() from None
    if isinstance(exc, ValueError):  # a header value that cannot be sent (line break, NUL)
        raise GatewayError(400, f"header: {exc}") from None
    raise exc


async def _send_with_aiohttp(
    client: aiohttp.ClientSession, pool: RegionPool, upstream: Upstream,
    request: OutboundRequest,
) -> Relayable:
    """Streamed uploads (and HEAD) go through aiohttp's client."""
    response = await client.request(
        request.method,
        URL(upstream.label + request.target, encoded=True),
        headers=request.headers,
        data=request.body,
        allow_redirects=False,
        timeout=pool.client_timeout,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )
    return _AiohttpResponse(response)


class Relayable(Protocol):
    status: int
    reason: str
    raw_headers: RawFields
    content_length: int | None

    async def read(self) -> bytes: ...
    def iter_chunks(self) -> AsyncIterator[bytes]: ...
    def release(self) -> None: ...


class _AiohttpResponse:
    """aiohttp's ClientResponse seen through the same small interface."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.reason = response.reason or ""
        self.raw_headers = list(response.raw_headers)
        self.content_length = response.content_length

    async def read(self) -> bytes:
        return await self._response.read()

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    def release(self) -> None:
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()  # unread body: the connection cannot be reused


_RELAY_ERRORS = (TimeoutError, aiohttp.ClientError, UpstreamBroken, UpstreamTimeout)


async def _relay(request: web.Request, upstream: Relayable) -> web.StreamResponse:
    headers = decoded_headers(forwarded_response_fields(upstream.raw_headers))
    length = upstream.content_length
    if length is not None and length <= SMALL_BODY and request.method != "HEAD":
        try:
            body = await upstream.read()
        except _RELAY_ERRORS as exc:
            raise _failure(exc) from None
        return web.Response(status=upstream.status, reason=upstream.reason, headers=headers,
                            body=body)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    stamp(response, request[INFO])  # the front middleware cannot: the head leaves here
    if length is not None:
        response.content_length = length
    await response.prepare(request)
    try:
        async for chunk in upstream.iter_chunks():
            await response.write(chunk)
    except _RELAY_ERRORS as exc:
        # The head is out, so no error body can follow: cut the connection so the
        # client sees a truncated response rather than a complete-looking one.
        log.warning("upstream failed mid-body: %r", exc)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _failure(exc: BaseException) -> GatewayError:
    if isinstance(exc, TimeoutError | UpstreamTimeout | aiohttp.ServerTimeoutError):
        return upstream_timeout()
    return upstream_unavailable()


def _count(metrics: Metrics, pool: RegionPool, upstream: Upstream, outcome: str) -> None:
    metrics.observe_upstream(pool.name, upstream.label, outcome)

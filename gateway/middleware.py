"""The two middlewares every request passes: the front door and the gate.

front: the request's context (request id kept if well-formed, else made; the settings
       snapshot), metrics and one access-log line.
gate:  normalise the request, match it once in the route table, enforce the rule's auth
       decision; `dispatch` then hands it to the matched endpoint or the proxy.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.accesslog import access_line
from gateway.auth.gate import RefusedLate, authorize, run_admitted
from gateway.auth.principal import Principal
from gateway.cors import CorsPolicy, is_preflight
from gateway.errors import GatewayError, bad_request, not_found
from gateway.keys import ACCESS_LOG, METRICS, RUNTIME, TRACING
from gateway.policy import UnsafePath, normalize_path
from gateway.policy.routes import NoRoute, Route
from gateway.proxy.headers import request_id_for
from gateway.requestinfo import INFO, RequestInfo, client_address, stamp
from gateway.tls.client_cert import client_certificate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def front_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    tracing = request.app[TRACING]
    info = RequestInfo(request_id=request_id_for(request.headers.get("X-Request-Id")),
                       settings=request.app[RUNTIME].current,
                       trace=tracing.begin(request.headers))
    request[INFO] = info
    response = await handler(request)
    if not response.prepared:
        stamp(response, info)
    elapsed = time.perf_counter() - started
    request.app[METRICS].observe_request(info.route, request.method, response.status, elapsed)
    if info.trace.span is not None:
        tracing.finish(info.trace, route=info.route, method=request.method,
                       status=response.status, region=info.region, upstream=info.upstream,
                       principal=info.principal)
    log = request.app[ACCESS_LOG]
    if log.enabled:
        log.write(_access_line(request, info, response, elapsed))
    return response


def _access_line(
    request: web.Request, info: RequestInfo, response: web.StreamResponse, elapsed: float
) -> str:
    principal = info.principal
    # A Response is written after the middlewares return: its length is known already.
    sent = response.body_length if response.prepared else response.content_length or 0
    return access_line(
        request_id=info.request_id, trace_id=info.trace.trace_id, method=request.method,
        path=info.path or request.path,
        status=response.status, route=info.route, region=info.region, upstream=info.upstream,
        elapsed=elapsed, bytes_in=info.bytes_in or request.content_length or 0,
        bytes_out=sent, remote=client_address(request),
        principal=principal_label(principal), refusal=info.refusal,
    )


def principal_label(principal: Principal | None) -> str | None:
    return (f"{principal.kind}:{principal.network_id}:{principal.user_id}"
            if principal else None)


CORS_PREFLIGHT = "cors-preflight"  # the route name of preflights the gateway answers


def _cors_preflight(request: web.Request, cors: CorsPolicy) -> web.Response | None:
    """The answer to a browser's preflight from an allowed origin; browsers send no
    credentials on these, so it comes before any policy rule."""
    origin = request.headers.get("Origin")
    method = request.headers.get("Access-Control-Request-Method")
    if not is_preflight(request.method, origin, method):
        return None
    assert origin is not None and method is not None
    headers = cors.preflight_headers(
        origin, method, request.headers.get("Access-Control-Request-Headers")
    )
    if headers is None:
        return None
    request[INFO].route = CORS_PREFLIGHT
    return web.Response(status=204, headers=headers)


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: CORS headers on every answer (errors and streams included),
    so a browser app can read the gateway's JSON errors too."""
    info = request.get(INFO)  # absent if the answer came before the front middleware
    cors = info.settings.cors if info is not None else request.app[RUNTIME].current.cors
    if cors.enabled and (info is None or info.route != CORS_PREFLIGHT):
        cors.apply(response.headers, request.headers.get("Origin"))


MAX_HEADER_BLOCK = 32 * 1024  # one line is limited by the parser (server.max_header_bytes)


@web.middleware
async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = request[INFO]
    settings = info.settings
    if request.method == "OPTIONS" and settings.cors.enabled:
        preflight = _cors_preflight(request, settings.cors)
        if preflight is not None:
            return preflight
    if sum(len(name) + len(value) + 4 for name, value in request.raw_headers) > MAX_HEADER_BLOCK:
        raise GatewayError(431, "request headers too large", close_connection=True)
    raw_path, _, info.query = request.raw_path.partition("?")
    try:
        info.path = normalize_path(raw_path, settings.path_options)
    except UnsafePath as exc:
        raise bad_request(f"path: {exc}") from None
    route = settings.routes.match(request.method, request.host, info.path, info.query)
    if isinstance(route, NoRoute):
        raise _no_route(route)
    info.rule = route.rule
    info.route = route.rule.name
    info.params = route.params
    info.client_cert = client_certificate(
        request, settings.client_cert_header, settings.trusted_proxies
    )
    try:
        await authorize(request, route.rule, built_in=route.endpoint is not None)
    except GatewayError as refused:
        raise _reshaped(route, refused) from None
    if route.endpoint is None:
        return await handler(request)
    try:
        return await run_admitted(request, route.rule, route.endpoint.handler)
    except RefusedLate as late:
        raise _reshaped(route, late.refusal) from None


def _reshaped(route: Route[Handler], refused: GatewayError) -> Exception:
    """The gate's refusal as the endpoint's protocol words it (OAuth has its own)."""
    if route.endpoint is None or route.endpoint.refusal is None:
        return refused
    return route.endpoint.refusal(refused)


def _no_route(route: NoRoute) -> GatewayError:
    if route.status == 405:
        return GatewayError(405, "Method Not Allowed", headers={"Allow": ", ".join(route.allow)})
    if route.status == 400:
        return bad_request("path: its letter case decides which route it takes")
    return not_found()

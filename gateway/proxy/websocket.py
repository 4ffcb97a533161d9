"""Proxy a WebSocket: open one to the upstream, then pump frames both ways.

Pings and pongs are relayed rather than answered here, so the two real ends see each
other's liveness. When either side closes, its close code goes to the other side,
the opposite pump is cancelled, and both sockets are closed: nothing is left running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.errors import GatewayError
from gateway.keys import AUTH_STATE, CLIENT, LIVE_SOCKETS
from gateway.proxy.forward import (
    upstream_request_headers,
    upstream_target,
    upstream_timeout,
    upstream_unavailable,
)
from gateway.proxy.headers import is_websocket_upgrade
from gateway.requestinfo import INFO
from gateway.runtime import Settings

log = logging.getLogger("gateway.websocket")

MAX_MESSAGE = 16 * 1024 * 1024
_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR)
# 1005 (no code) and 1006 (abnormal) are observed, never sent; map them to sendable ones.
_SENDABLE = {None: 1000, 1005: 1000, 1006: 1011}

AnySocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse

__all__ = ["forward_websocket", "is_websocket_upgrade", "pump_both_ways", "relay"]


def too_many_websockets() -> GatewayError:
    return GatewayError(429, "RateLimit Exceed.", headers={"Retry-After": "60"})


def check_websocket_quota(request: web.Request, settings: Settings) -> None:
    """At most `proxy.max_websockets_per_token` live connections per credential: one
    stolen token must not hold thousands of upstream sockets."""
    principal = request[INFO].principal
    limit = settings.config.proxy.max_websockets_per_token
    if principal is not None and request.app[LIVE_SOCKETS].open_with(principal) >= limit:
        raise too_many_websockets()


async def forward_websocket(request: web.Request, settings: Settings) -> web.StreamResponse:
    check_websocket_quota(request, settings)
    info = request[INFO]
    info.region = settings.config.regions.for_host(request.host).name
    target = upstream_target(request)
    upstream = await connect_upstream(
        request, settings, target, upstream_headers(request, settings), requested_protocols(request)
    )
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoping=False,
        max_msg_size=MAX_MESSAGE,
    )
    try:
        await client.prepare(request)
        await relay(request, client, upstream)
    finally:
        await upstream.close()
    return client


async def relay(
    request: web.Request,
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    *,
    farewell: bytes | None = None,
) -> None:
    """Pump both ways until one side closes or, for a connection opened with a token,
    until that token is revoked, its user banned or it expires: then the client gets
    `farewell` (an MQTT 5 DISCONNECT, say) and close code 1008."""
    principal = request[INFO].principal
    if principal is None:
        await pump_both_ways(client, upstream)
        return
    ended = asyncio.get_running_loop().create_future()

    def stop(reason: str) -> None:
        if not ended.done():
            ended.set_result(reason)

    leeway = request[INFO].settings.config.tokens.leeway
    expires_in = (principal.expires_at + leeway - request.app[AUTH_STATE].clock()
                  if principal.expires_at else None)
    unregister = request.app[LIVE_SOCKETS].register(principal, stop, expires_in=expires_in)
    try:
        await pump_both_ways(client, upstream, ended)
        if ended.done() and not client.closed:
            if farewell is not None:
                await client.send_bytes(farewell)
            await client.close(code=1008, message=ended.result().encode())
    finally:
        unregister()
        ended.cancel()


def requested_protocols(request: web.Request) -> list[str]:
    """The subprotocols the client offered, in its order."""
    return [
        item.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", [])
        for item in value.split(",")
        if item.strip()
    ]


async def connect_upstream(
    request: web.Request,
    settings: Settings,
    target: str,
    headers: CIMultiDict[str],
    protocols: list[str],
    pool_name: str | None = None,
) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket to the first upstream of the region's pool (or `pool_name`) that takes it."""
    info = request[INFO]
    pool = settings.pools[pool_name or info.region or settings.config.regions.default]
    session = request.app[CLIENT]
    for upstream in pool.candidates():
        info.upstream = upstream.label
        url = upstream.label.replace("http", "ws", 1) + target
        try:
            return await session.ws_connect(
                url,
                headers=headers,
                protocols=protocols,
                autoping=False,
                max_msg_size=MAX_MESSAGE,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            pool.mark_down(upstream)
            continue
        except aiohttp.WSServerHandshakeError as exc:
            if 400 <= exc.status < 500:
                raise GatewayError(exc.status, "upstream refused the WebSocket upgrade") from None
            raise upstream_unavailable() from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise upstream_timeout() from None
        except aiohttp.ClientError:
            raise upstream_unavailable() from None
    raise upstream_unavailable()


def upstream_headers(request: web.Request, settings: Settings) -> CIMultiDict[str]:
    headers = upstream_request_headers(request, settings)
    # ws_connect negotiates key, version, extensions and subprotocols itself.
    for name in [n for n in headers if n.lower().startswith("sec-websocket-")]:
        del headers[name]
    return headers


async def pump_both_ways(
    client: AnySocket, upstream: AnySocket, interrupt: asyncio.Future[str] | None = None
) -> None:
    """Relay until either side closes or `interrupt` resolves; then stop both pumps."""
    to_upstream = asyncio.create_task(_pump(client, upstream), name="gateway-ws-to-upstream")
    to_client = asyncio.create_task(_pump(upstream, client), name="gateway-ws-to-client")
    waiting: set[asyncio.Future[Any]] = {to_upstream, to_client}
    if interrupt is not None:
        waiting.add(interrupt)
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_upstream, to_client):
            task.cancel()
        await asyncio.wait((to_upstream, to_client))
        if interrupt is not None and interrupt.done():
            await upstream.close(code=1001)
        else:
            for socket in (client, upstream):
                if not socket.closed:
                    await socket.close()


async def _pump(source: AnySocket, sink: AnySocket) -> None:
    while True:
        message = await source.receive()
        kind = message.type
        if kind == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif kind == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif kind == aiohttp.WSMsgType.PING:
            await sink.ping(message.data)
        elif kind == aiohttp.WSMsgType.PONG:
            await sink.pong(message.data)
        elif kind in _CLOSING:
            code = source.close_code
            await sink.close(code=_SENDABLE.get(code, code or 1000),
                             message=(message.extra or "").encode()[:123]
                             if isinstance(message.extra, str) else b"")
            return

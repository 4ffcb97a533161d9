"""The route for everything the gateway does not serve itself: forward it."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import RUNTIME
from gateway.proxy.forward import forward
from gateway.proxy.mqtt_gate import forward_mqtt
from gateway.proxy.websocket import forward_websocket, is_websocket_upgrade
from gateway.requestinfo import INFO


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    settings = request.app[RUNTIME].current
    if request[INFO].mqtt:
        return await forward_mqtt(request, settings)
    if is_websocket_upgrade(request.headers):
        return await forward_websocket(request, settings)
    return await forward(request, settings)


def add_routes(app: web.Application) -> None:
    """Registered last: built-in routes take precedence, the policy gate ran before."""
    app.router.add_route("*", "/{tail:.*}", proxy_handler, name="proxy")

"""The one aiohttp route: every request reaches it after the gate, which has already
served built-in endpoints from the route table; what is left goes upstream."""

from __future__ import annotations

from aiohttp import web

from gateway.policy import Auth
from gateway.proxy.forward import forward
from gateway.proxy.mqtt_gate import forward_mqtt
from gateway.proxy.websocket import forward_websocket, is_websocket_upgrade
from gateway.requestinfo import INFO


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    info = request[INFO]
    settings = info.settings
    if info.rule is not None and info.rule.auth is Auth.MQTT_CONNECT:
        return await forward_mqtt(request, settings)
    if is_websocket_upgrade(request.headers):
        return await forward_websocket(request, settings)
    return await forward(request, settings)


def add_routes(app: web.Application) -> None:
    """A single catch-all: aiohttp's router decides nothing (the route table does)."""
    app.router.add_route("*", "/{tail:.*}", proxy_handler, name="proxy")

"""A loopback upstream that answers what the published SDK asks for during a session.

- `GET /api/v3/network-settings/chat`: the chat settings object, at the top level of the
  body, in the shape the SDK reads (`messagePreview.enabled` / `.isIncludeDeleted` in
  `initializeMessagePreviewSetting`; `Amity.ChatSettings` in the SDK's types).
- `/socket.io/` WebSocket: just enough Engine.IO 3 / Socket.IO 2 for the SDK's client to
  see `connect` (open packet, namespace connect, pong for each ping).
- `/mqtt` WebSocket (subprotocol `mqtt`): just enough MQTT 3.1.1 for the SDK's MQTT client
  (CONNACK, SUBACK, UNSUBACK, PINGRESP); each CONNECT's client id, username and password
  are recorded so the tests can check the SDK sends the access token there.
- anything else: 200 `{"status": "success", "data": {...}}` echoing what arrived.

Every request is recorded (method, path, query, the headers the gateway adds).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

CHAT_SETTINGS = {
    "enabled": True,
    "mention": {"isAllowMentionedChannelEnabled": False},
    "messagePreview": {"enabled": False, "isIncludeDeleted": False},
    "marker": {"enabled": True},
}

ENGINE_IO_OPEN = "0" + json.dumps(
    {"sid": "gateway-e2e", "upgrades": [], "pingInterval": 25000, "pingTimeout": 60000}
)


@dataclass
class Recorded:
    requests: list[dict[str, Any]] = field(default_factory=list)
    mqtt_connects: list[dict[str, Any]] = field(default_factory=list)
    mqtt_subscriptions: list[str] = field(default_factory=list)
    socketio_connects: list[dict[str, Any]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]


RECORDED = web.AppKey("recorded", Recorded)


def _record(request: web.Request) -> None:
    request.app[RECORDED].requests.append({
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {k.lower(): v for k, v in request.headers.items()
                    if k.lower().startswith(("x-gateway-", "authorization", "x-api-key",
                                             "x-forwarded-", "x-request-id", "upgrade",
                                             "sec-websocket-protocol"))},
    })


def _read_string(data: bytes, at: int) -> tuple[bytes, int]:
    size = int.from_bytes(data[at:at + 2], "big")
    return data[at + 2:at + 2 + size], at + 2 + size


def parse_connect(body: bytes) -> dict[str, Any]:
    """The fields of an MQTT 3.1.1 CONNECT packet's variable header and payload."""
    protocol, at = _read_string(body, 0)
    level, flags = body[at], body[at + 1]
    at += 4  # level, flags, keep-alive
    client_id, at = _read_string(body, at)
    if flags & 0x04:  # will
        _will_topic, at = _read_string(body, at)
        _will_message, at = _read_string(body, at)
    username = password = None
    if flags & 0x80:
        raw, at = _read_string(body, at)
        username = raw.decode()
    if flags & 0x40:
        raw, at = _read_string(body, at)
        password = raw.decode()
    return {"protocol": protocol.decode(), "level": level, "clientId": client_id.decode(),
            "username": username, "password": password, "clean": bool(flags & 0x02)}


def _packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Complete MQTT packets at the front of `buffer` (removed from it)."""
    out: list[tuple[int, bytes]] = []
    while len(buffer) >= 2:
        length, multiplier, at = 0, 1, 1
        while True:
            if at >= len(buffer):
                return out
            byte = buffer[at]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            at += 1
            if not byte & 0x80:
                break
        if len(buffer) < at + length:
            return out
        out.append((buffer[0], bytes(buffer[at:at + length])))
        del buffer[:at + length]
    return out


async def mqtt(request: web.Request) -> web.WebSocketResponse:
    _record(request)
    recorded = request.app[RECORDED]
    ws = web.WebSocketResponse(protocols=("mqtt", "mqttv3.1"))
    await ws.prepare(request)
    buffer = bytearray()
    async for message in ws:
        if message.type != WSMsgType.BINARY:
            continue
        buffer.extend(message.data)
        for header, body in _packets(buffer):
            kind = header >> 4
            if kind == 1:  # CONNECT
                recorded.mqtt_connects.append(parse_connect(body))
                await ws.send_bytes(b"\x20\x02\x00\x00")
            elif kind == 8:  # SUBSCRIBE: packet id, then (topic, qos) pairs
                at, granted = 2, bytearray()
                while at < len(body):
                    topic, at = _read_string(body, at)
                    recorded.mqtt_subscriptions.append(topic.decode())
                    at += 1
                    granted.append(0)
                await ws.send_bytes(bytes([0x90, 2 + len(granted)]) + body[:2] + bytes(granted))
            elif kind == 10:  # UNSUBSCRIBE
                await ws.send_bytes(b"\xb0\x02" + body[:2])
            elif kind == 12:  # PINGREQ
                await ws.send_bytes(b"\xd0\x00")
            elif kind == 14:  # DISCONNECT
                await ws.close()
    return ws


async def socket_io(request: web.Request) -> web.StreamResponse:
    _record(request)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return web.json_response({"status": "error", "code": 400000,
                                  "message": "websocket transport only"}, status=400)
    request.app[RECORDED].socketio_connects.append(dict(request.query))
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(ENGINE_IO_OPEN)
    await ws.send_str("40")  # Socket.IO: connected to the default namespace
    async for message in ws:
        if message.type == WSMsgType.TEXT and message.data.startswith("2"):
            await ws.send_str("3" + message.data[1:])  # pong
    return ws


async def chat_settings(request: web.Request) -> web.Response:
    _record(request)
    return web.json_response(CHAT_SETTINGS)


async def anything(request: web.Request) -> web.Response:
    _record(request)
    await request.read()
    return web.json_response({"status": "success", "data": {
        "path": request.path, "userId": request.headers.get("X-Gateway-User-Id")}})


def sdk_upstream_app() -> web.Application:
    app = web.Application()
    app[RECORDED] = Recorded()
    app.router.add_get("/api/v3/network-settings/chat", chat_settings)
    app.router.add_get("/mqtt", mqtt)
    app.router.add_route("*", "/socket.io/", socket_io)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


@asynccontextmanager
async def running_sdk_upstream() -> AsyncIterator[tuple[str, Recorded]]:
    app = sdk_upstream_app()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", app[RECORDED]
    finally:
        await runner.cleanup()


def mqtt_connect_packet(client_id: str, username: str, password: str) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s) with username and password."""

    def string(value: str) -> bytes:
        raw = value.encode()
        return len(raw).to_bytes(2, "big") + raw

    body = (string("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")
            + string(client_id) + string(username) + string(password))
    size, length = len(body), bytearray()
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            break
    return bytes([0x10]) + bytes(length) + body

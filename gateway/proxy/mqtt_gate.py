"""MQTT over WebSocket (API.md section 4): the credential is inside the first packet.

The client's WebSocket is accepted, its CONNECT read (gateway/proxy/mqtt.py) and its
password checked as an access token, and its username against that token's user,
before the upstream broker is even connected to. A refusal is a CONNACK "not
authorized" and a close; nothing reaches the broker. Accepted, the CONNECT and whatever
followed it go upstream untouched and the stream is relayed as is, until a side closes
or the token is revoked, its user banned or the token expires.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import aiohttp
from aiohttp import web

from gateway.auth.decision import Refused, RequestFacts, decide
from gateway.auth.gate import staleness_reason, token_credential
from gateway.auth.principal import Principal
from gateway.errors import GatewayError, bad_request
from gateway.keys import AUTH_STATE, LIVE_SOCKETS, METRICS, STORE, TOKENS
from gateway.policy import Auth
from gateway.proxy.forward import upstream_target
from gateway.proxy.headers import is_websocket_upgrade
from gateway.proxy.mqtt import (
    ConnectPacket,
    ConnectReader,
    MqttConnectError,
    connack_bad_authentication_method,
    connack_for_error,
    connack_not_authorized,
    disconnect_for_revocation,
)
from gateway.proxy.upstreams import mqtt_pool
from gateway.proxy.websocket import (
    MAX_MESSAGE,
    connect_upstream,
    relay,
    requested_protocols,
    upstream_headers,
)
from gateway.requestinfo import INFO
from gateway.runtime import Settings

log = logging.getLogger("gateway.mqtt")

CONNECT_TIMEOUT = 10.0  # seconds a client has to send its CONNECT after the upgrade
SUBPROTOCOLS = ("mqtt", "mqttv3.1")
POLICY_VIOLATION = 1008
PROTOCOL_ERROR = 1002


class _Refused(Exception):
    def __init__(self, answer: bytes | None, reason: str) -> None:
        super().__init__(reason)
        self.answer = answer


async def forward_mqtt(request: web.Request, settings: Settings) -> web.StreamResponse:
    if not is_websocket_upgrade(request.headers):
        raise bad_request("expected a WebSocket upgrade carrying MQTT")
    info = request[INFO]
    info.region = settings.config.regions.for_host(request.host).name
    offered = requested_protocols(request)
    chosen = next((p for p in offered if p.lower() in SUBPROTOCOLS), None)
    client = web.WebSocketResponse(
        protocols=(chosen,) if chosen else (), autoping=False, max_msg_size=MAX_MESSAGE
    )
    await client.prepare(request)
    try:
        packet, first_bytes = await _read_connect(client)
        info.principal = await _authorize(request, packet)
        if request.app[LIVE_SOCKETS].open_with(info.principal) >= \
                settings.config.proxy.max_websockets_per_token:
            raise _Refused(connack_not_authorized(packet.protocol_level),
                           "too many connections for this token")
    except _Refused as refused:
        log.info("MQTT CONNECT refused: %s", refused)
        if refused.answer is not None and not client.closed:
            await client.send_bytes(refused.answer)
        await client.close(code=POLICY_VIOLATION, message=str(refused).encode()[:123])
        return client
    target = upstream_target(request)
    try:
        pool = mqtt_pool(info.region)
        upstream = await connect_upstream(
            request, settings, target, upstream_headers(request, settings),
            [chosen] if chosen else [], pool if pool in settings.pools else None,
        )
    except GatewayError as exc:
        await client.close(code=1011, message=exc.message.encode()[:123])
        return client
    try:
        await upstream.send_bytes(first_bytes)
        await relay(request, client, upstream,
                    farewell=disconnect_for_revocation(packet.protocol_level))
    finally:
        await upstream.close()
    return client


async def _read_connect(client: web.WebSocketResponse) -> tuple[ConnectPacket, bytes]:
    """The CONNECT and every byte received with it, or _Refused."""
    reader = ConnectReader()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            while True:
                message = await client.receive()
                if message.type is not aiohttp.WSMsgType.BINARY:
                    raise _Refused(None, "expected a binary MQTT CONNECT")
                packet = reader.feed(message.data)
                if packet is not None:
                    return packet, packet.raw + reader.trailing
    except TimeoutError:
        raise _Refused(None, "no MQTT CONNECT in time") from None
    except MqttConnectError as exc:
        raise _Refused(connack_for_error(exc), f"malformed CONNECT: {exc.reason}") from None


async def _authorize(request: web.Request, packet: ConnectPacket) -> Principal:
    """The end user the CONNECT's password (an access token) stands for, or _Refused.

    The password goes through the same decision as a bearer token on an HTTP request
    (the /mqtt rule read as `access_token`: revocation, bans, mTLS, staleness); the
    username must then be that user's `_id`, exactly."""
    level = packet.protocol_level
    if packet.auth_method is not None:
        raise _Refused(connack_bad_authentication_method(), "enhanced authentication")
    refuse = _Refused(connack_not_authorized(level), "not authorized")
    if packet.password is None or packet.username is None:
        raise refuse
    try:
        password = packet.password.decode("ascii")
    except UnicodeDecodeError:
        raise refuse from None
    info = request[INFO]
    assert info.rule is not None
    state = request.app[AUTH_STATE]
    decision = decide(
        dataclasses.replace(info.rule, auth=Auth.ACCESS_TOKEN),
        token_credential(request.app[TOKENS], password), state, state.clock(),
        leeway=request.app[TOKENS].leeway,
        facts=RequestFacts("GET", info.client_cert),
        stale=None if info.rule.serve_stale else staleness_reason(request, info),
    )
    if isinstance(decision, Refused) or decision.principal is None:
        if isinstance(decision, Refused):
            info.refusal = decision.reason.value
            request.app[METRICS].observe_refusal(info.route, decision.reason.value)
        raise refuse
    principal = decision.principal
    user = await request.app[STORE].get_user(principal.network_id, principal.user_id)
    # The broker knows users by `_id`: a userId that equals someone else's `_id` must
    # not connect as them.
    if user is None or packet.username != user.id:
        raise refuse
    return principal

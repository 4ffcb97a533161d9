"""Real-time channels through the gateway (API.md section 4): MQTT over WebSocket to a real
Mosquitto broker with the paho-mqtt client, and socket.io-style upgrades with `?token=`."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import pytest
from aiohttp import WSMsgType, web
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.keys import LIVE_SOCKETS
from gateway.testing.support import REPO, Clock, free_port, write_config
from tests.auth.conftest import Gateway
from tests.proxy.conftest import in_process_gateway

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real Mosquitto on a free loopback port, for this module only."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        import socket
        import time

        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Upstream:
    """What the upstream saw: MQTT bridge connections and socket.io upgrades."""

    url: str = ""
    mqtt_connections: int = 0
    socketio_upgrades: list[dict[str, str]] = field(default_factory=list)
    socketio_queries: list[str] = field(default_factory=list)


def realtime_upstream(broker_port: int, seen: Upstream) -> web.Application:
    async def mqtt(request: web.Request) -> web.WebSocketResponse:
        # MQTT over WebSocket in front of the broker's TCP listener: bytes both ways.
        ws = web.WebSocketResponse(protocols=("mqtt",))
        await ws.prepare(request)
        seen.mqtt_connections += 1
        reader, writer = await asyncio.open_connection("127.0.0.1", broker_port)

        async def to_broker() -> None:
            async for message in ws:
                if message.type is WSMsgType.BINARY:
                    writer.write(message.data)
                    await writer.drain()
            writer.close()

        async def to_client() -> None:
            while data := await reader.read(65536):
                await ws.send_bytes(data)
            await ws.close()

        tasks = [asyncio.create_task(to_broker()), asyncio.create_task(to_client())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        writer.close()
        return ws

    async def socketio(request: web.Request) -> web.WebSocketResponse:
        seen.socketio_upgrades.append(dict(request.headers))
        seen.socketio_queries.append(request.query_string)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(f"echo:{message.data}")
        return ws

    app = web.Application()
    app.router.add_get("/mqtt", mqtt)
    app.router.add_get("/socket.io/", socketio)
    return app


@pytest.fixture
async def rt(tmp_path: Path, broker: int) -> AsyncIterator[tuple[Gateway, Upstream, Clock]]:
    seen = Upstream()
    runner = web.AppRunner(realtime_upstream(broker, seen))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    seen.url = f"http://127.0.0.1:{port}"
    clock = Clock()
    config = write_config(tmp_path, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [seen.url]}},
        "policies": [str(REPO / "policies" / "default.yaml")],
    })
    try:
        async with in_process_gateway(config, clock=clock) as (url, app), \
                aiohttp.ClientSession() as session:
            yield Gateway(url, app, session, seen.url), seen, clock
    finally:
        await runner.cleanup()


class MqttClient:
    """paho-mqtt over WebSocket through the gateway; its network loop runs in a thread."""

    def __init__(self, gateway_url: str, username: str, password: str,
                 protocol: MQTTProtocolVersion = paho.MQTTv311) -> None:
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.reason: Any = None
        self.messages: list[bytes | bytearray] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, transport="websockets",
                                  protocol=protocol)
        self.client.ws_set_options(path="/mqtt")
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_message = lambda _c, _u, message: self.messages.append(message.payload)
        self.port = int(gateway_url.rsplit(":", 1)[1])

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        self.reason = reason
        self.connected.set()

    async def connect(self) -> Any:
        """The CONNACK's reason code."""
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port, 30)
        self.client.loop_start()
        assert await asyncio.to_thread(self.connected.wait, 10), "no CONNACK"
        return self.reason

    async def wait_disconnected(self, timeout: float) -> bool:
        return await asyncio.to_thread(self.disconnected.wait, timeout)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def _user(gw: Gateway, user_id: str = "alice", device: str = "dev-1") -> dict[str, Any]:
    network = gw.networks[0] if gw.networks else await gw.network()
    return await gw.login(network, user_id, device_id=device)


async def test_mqtt_with_a_valid_token_reaches_the_broker(
    rt: tuple[Gateway, Upstream, Clock],
) -> None:
    gw, seen, _ = rt
    session = await _user(gw)
    client = MqttClient(gw.url, session["users"][0]["_id"], session["accessToken"])
    try:
        assert (await client.connect()).value == 0
        client.client.subscribe("rt/test", qos=1)
        await asyncio.sleep(0.2)
        client.client.publish("rt/test", b"through the gateway", qos=1)
        for _ in range(100):
            if client.messages:
                break
            await asyncio.sleep(0.05)
        assert client.messages == [b"through the gateway"]
        assert seen.mqtt_connections == 1
    finally:
        client.stop()


@pytest.mark.parametrize("protocol", [paho.MQTTv311, paho.MQTTv5])
@pytest.mark.parametrize("case", ["expired", "revoked", "wrong-user", "admin-token", "garbage",
                                  "user-id-not-_id", "user-id-equal-to-victims-_id"])
async def test_mqtt_refusals_never_reach_the_broker(
    rt: tuple[Gateway, Upstream, Clock], case: str, protocol: MQTTProtocolVersion
) -> None:
    gw, seen, clock = rt
    session = await _user(gw)
    username, token = session["users"][0]["_id"], session["accessToken"]
    if case == "expired":
        clock.advance(2 * 86400)
    elif case == "revoked":
        status, _, _ = await gw.call("DELETE", "/api/v4/sessions", token)
        assert status == 200
    elif case == "wrong-user":
        username = (await _user(gw, "bob", "dev-2"))["users"][0]["_id"]
    elif case == "user-id-not-_id":
        username = "alice"  # the broker knows users by `_id`: only that name is accepted
    elif case == "user-id-equal-to-victims-_id":
        # Mallory picks the victim's `_id` as her userId: her token must not connect
        # under the victim's name.
        mallory = await _user(gw, username, "dev-mallory")
        token = mallory["accessToken"]
    elif case == "admin-token":
        token = await gw.admin_token(gw.networks[0], "ada", "admin")
    else:
        token = "not-a-token"
    client = MqttClient(gw.url, username, token, protocol)
    try:
        reason = await client.connect()
        assert reason.is_failure and reason.value in (5, 0x87), reason  # not authorized
        assert await client.wait_disconnected(5)
    finally:
        client.stop()
    assert seen.mqtt_connections == 0


async def test_a_revocation_ends_an_open_mqtt_connection(
    rt: tuple[Gateway, Upstream, Clock],
) -> None:
    gw, _, _ = rt
    session = await _user(gw)
    client = MqttClient(gw.url, session["users"][0]["_id"], session["accessToken"])
    try:
        assert (await client.connect()).value == 0
        assert len(gw.app[LIVE_SOCKETS]) == 1
        status, _, _ = await gw.call("DELETE", "/api/v4/sessions", session["accessToken"])
        assert status == 200
        # SQLite feed: polled every 50 ms (README "Change feed" has the figures).
        assert await client.wait_disconnected(2), "still connected after the revocation"
    finally:
        client.stop()
    for _ in range(50):
        if len(gw.app[LIVE_SOCKETS]) == 0:
            break
        await asyncio.sleep(0.02)
    assert len(gw.app[LIVE_SOCKETS]) == 0


async def test_a_ban_ends_an_open_mqtt_connection(rt: tuple[Gateway, Upstream, Clock]) -> None:
    gw, _, _ = rt
    session = await _user(gw)
    admin = await gw.admin_token(gw.networks[0], "ada", "admin")
    client = MqttClient(gw.url, session["users"][0]["_id"], session["accessToken"])
    try:
        assert (await client.connect()).value == 0
        status, _, _ = await gw.call("POST", "/api/v3/users/alice/ban", admin)
        assert status == 200
        assert await client.wait_disconnected(2), "still connected after the ban"
    finally:
        client.stop()


@pytest.mark.parametrize("payload", [
    b"\x30\x02\x00\x00",  # PUBLISH first, not CONNECT
    b"\x10\xff\xff\xff\xff\x7f",  # remaining length in 5 bytes
    b"\x10" + b"\xff\xff\xff\x7f",  # 256 MiB announced: over the CONNECT limit
    b"\x10\x0c\x00\x04MQTT\x04\x01\x00\x3c\x00\x00",  # reserved flag set
], ids=["not-connect", "bad-length", "oversized", "reserved-flag"])
async def test_malformed_connects_close_without_harm(
    rt: tuple[Gateway, Upstream, Clock], payload: bytes
) -> None:
    gw, seen, _ = rt
    async with gw.session.ws_connect(f"{gw.url}/mqtt", protocols=("mqtt",)) as ws:
        await ws.send_bytes(payload)
        message = await ws.receive(timeout=5)
        while message.type is WSMsgType.BINARY:  # a CONNACK may come first
            message = await ws.receive(timeout=5)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    async with gw.session.ws_connect(f"{gw.url}/mqtt", protocols=("mqtt",)) as ws:
        await ws.send_str("text is not MQTT")
        assert (await ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert seen.mqtt_connections == 0
    async with gw.session.get(f"{gw.url}/healthz") as response:
        assert response.status == 200


async def test_mqtt_needs_a_websocket(rt: tuple[Gateway, Upstream, Clock]) -> None:
    gw, _, _ = rt
    status, body, _ = await gw.call("GET", "/mqtt")
    assert status == 400 and body["code"] == 400000


async def test_socket_io_checks_the_query_token(rt: tuple[Gateway, Upstream, Clock]) -> None:
    gw, seen, clock = rt
    session = await _user(gw)
    token = session["accessToken"]
    url = f"{gw.url}/socket.io/?EIO=3&transport=websocket&token={token}"
    async with gw.session.ws_connect(url) as ws:
        await ws.send_str("2probe")
        assert (await ws.receive(timeout=5)).data == "echo:2probe"
    (headers,) = seen.socketio_upgrades
    assert headers["X-Gateway-User-Id"] == "alice"
    # The credential the gateway consumed stops here; the other parameters pass.
    assert seen.socketio_queries == ["EIO=3&transport=websocket"]
    # Refused before the upstream sees anything: no token, garbage, rebound device,
    # revoked, expired.
    refusals: list[tuple[str, int, str]] = []
    for label in ("none", "garbage", "rebound", "revoked", "expired"):
        if label == "none":
            target = f"{gw.url}/socket.io/?EIO=3&transport=websocket"
        elif label == "garbage":
            target = f"{gw.url}/socket.io/?EIO=3&transport=websocket&token=x.y.z"
        else:
            fresh = await _user(gw, "carol", f"dev-{label}")
            target = (f"{gw.url}/socket.io/?EIO=3&transport=websocket"
                      f"&token={fresh['accessToken']}")
            if label == "rebound":  # another user registers the same device
                await _user(gw, "dave", f"dev-{label}")
            elif label == "revoked":
                await gw.call("DELETE", "/api/v4/sessions", fresh["accessToken"])
            else:
                clock.advance(2 * 86400)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await gw.session.ws_connect(target)
        refusals.append((label, refused.value.status, ""))
    assert [status for _, status, _ in refusals] == [401] * 5, refusals
    assert len(seen.socketio_upgrades) == 1


async def test_a_revocation_ends_an_open_socket_io_connection(
    rt: tuple[Gateway, Upstream, Clock],
) -> None:
    gw, _, _ = rt
    session = await _user(gw)
    url = f"{gw.url}/socket.io/?EIO=3&transport=websocket&token={session['accessToken']}"
    async with gw.session.ws_connect(url) as ws:
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "echo:hello"
        await gw.call("DELETE", "/api/v4/sessions", session["accessToken"])
        message = await ws.receive(timeout=2)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        assert ws.close_code == 1008


async def test_mqtt_goes_to_the_regions_mqtt_upstreams(tmp_path: Path, broker: int) -> None:
    """`regions.<r>.mqtt_upstreams`: the broker lives on another host than the API."""
    from gateway.testing.upstream import running_upstream

    seen = Upstream()
    runner = web.AppRunner(realtime_upstream(broker, seen))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with running_upstream("api") as api:  # no MQTT there
            config = write_config(tmp_path, {
                "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
                "regions": {"default": "sg", "sg": {
                    "hosts": [], "upstreams": [api],
                    "mqtt_upstreams": [f"http://127.0.0.1:{port}"]}},
                "policies": [str(REPO / "policies" / "default.yaml")],
            })
            async with in_process_gateway(config) as (url, app), \
                    aiohttp.ClientSession() as session:
                gw = Gateway(url, app, session, api)
                user = await _user(gw)
                client = MqttClient(url, user["users"][0]["_id"], user["accessToken"])
                try:
                    assert (await client.connect()).value == 0
                finally:
                    client.stop()
                status, body, _ = await gw.call("GET", "/api/v3/x", user["accessToken"])
                assert status == 200 and body["upstream"] == "api"  # the API stays put
        assert seen.mqtt_connections == 1
    finally:
        await runner.cleanup()

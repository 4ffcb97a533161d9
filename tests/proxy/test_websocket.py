"""WebSocket upgrades proxied to a real upstream: both directions, pings, close codes."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.proxy.conftest import ProxySetup


async def test_echo_both_ways_and_the_close_code_is_relayed(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(
        f"{proxy.url}/pub/ws?room=1", protocols=("mqtt",), headers={"Host": "api.eu.amity.co"},
        autoping=False,
    ) as ws:
        assert ws.protocol == "mqtt"
        assert (await ws.receive_str(timeout=5)) == "hello from eu"
        await ws.send_str("hi")
        assert (await ws.receive_str(timeout=5)) == "echo:hi"
        await ws.send_bytes(b"\x01\x02\x03")
        assert (await ws.receive_bytes(timeout=5)) == b"\x03\x02\x01"
        await ws.ping(b"are you there")
        pong = await ws.receive(timeout=5)
        assert pong.type == aiohttp.WSMsgType.PONG and pong.data == b"are you there"
        await ws.send_str("close:4001")
        closing = await ws.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 4001
    assert ws.close_code == 4001


async def test_client_close_reaches_the_upstream_and_nothing_is_left_running(
    proxy: ProxySetup,
) -> None:
    before = {t for t in asyncio.all_tasks() if t.get_name().startswith("gateway-ws")}
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{proxy.url}/ws")
        assert (await ws.receive_str(timeout=5)) == "hello from sg"
        await ws.close(code=4002)
        for _ in range(50):
            async with session.get(f"{proxy.url}/pub/ws-close-codes") as response:
                codes = await response.json()
            if codes:
                break
            await asyncio.sleep(0.05)
        assert codes == [4002]
    for _ in range(50):
        pumps = {t for t in asyncio.all_tasks() if t.get_name().startswith("gateway-ws")}
        if pumps <= before:
            break
        await asyncio.sleep(0.05)
    assert pumps <= before, "WebSocket pumps still running after both sides closed"


async def test_websocket_to_a_dead_region_is_502(
    proxy: ProxySetup, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.proxy.conftest import in_process_gateway, proxy_config

    dead = {name: f"http://127.0.0.1:{proxy.dead_port}" for name in ("eu", "sg", "us")}
    config = proxy_config(tmp_path_factory.mktemp("deadws"), dead, proxy.dead_port)
    async with in_process_gateway(config) as (url, _app), aiohttp.ClientSession() as session:
        try:
            await session.ws_connect(f"{url}/ws")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 502
        else:
            raise AssertionError("upgrade to a dead upstream succeeded")

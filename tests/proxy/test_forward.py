"""Forwarding against real upstream servers on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from gateway.keys import ACCESS_LOG
from gateway.testing.support import raw_request
from tests.proxy.conftest import ProxySetup


async def _echo(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    async with session.get(url, **kwargs) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


@pytest.mark.parametrize(
    ("host", "region"),
    [("api.eu.amity.co", "eu"), ("API.EU.AMITY.CO:8443", "eu"), ("api.us.amity.co", "us"),
     ("api.sg.amity.co", "sg"), ("api.amity.co", "sg"), ("elsewhere.example", "sg")],
)
async def test_host_chooses_the_region(proxy: ProxySetup, host: str, region: str) -> None:
    async with aiohttp.ClientSession() as session:
        body = await _echo(session, f"{proxy.url}/pub/where?x=1", headers={"Host": host})
    assert body["upstream"] == region
    assert body["path"] == "/pub/where" and body["query"] == "x=1"


async def test_a_refusing_upstream_is_skipped_for_the_next(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(4):  # round-robin would pick the dead one every other time
            body = await _echo(session, f"{proxy.url}/pub/failover")
            assert body["upstream"] == "sg"
        async with session.get(f"{proxy.url}/metrics") as response:
            metrics = await response.text()
    assert f'upstream="http://127.0.0.1:{proxy.dead_port}"' in metrics
    assert 'outcome="refused"' in metrics


async def test_unreachable_region_is_502_json(
    proxy: ProxySetup, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.proxy.conftest import in_process_gateway, proxy_config

    dead = {name: f"http://127.0.0.1:{proxy.dead_port}" for name in ("eu", "sg", "us")}
    config = proxy_config(tmp_path_factory.mktemp("dead"), dead, proxy.dead_port)
    async with in_process_gateway(config) as (url, _app), aiohttp.ClientSession() as session:
        async with session.get(f"{url}/pub/x") as response:
            assert response.status == 502
            assert response.content_type == "application/json"
            assert await response.json() == {
                "status": "error", "code": 500000, "message": "upstream unavailable"}
            assert response.headers["X-Request-Id"]


async def test_slow_upstream_is_504_json_within_the_read_timeout(proxy: ProxySetup) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        started = loop.time()
        async with session.get(f"{proxy.url}/pub/slow?delay=2.5",
                               headers={"Host": "api.us.amity.co"}) as response:
            assert response.status == 504
            assert await response.json() == {
                "status": "error", "code": 500000, "message": "upstream timeout"}
        assert loop.time() - started < 3  # the us region's read_timeout is 1s


async def test_upstream_hanging_up_without_an_answer_is_502(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/pub/hangup",
                               headers={"Host": "api.eu.amity.co"}) as response:
            assert response.status == 502
            assert (await response.json())["message"] == "upstream unavailable"


async def test_upstream_reset_mid_body_truncates_the_response(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(f"{proxy.url}/pub/reset",
                                   headers={"Host": "api.eu.amity.co"}) as response:
                await response.read()
        # The gateway itself is unharmed.
        async with session.get(f"{proxy.url}/healthz") as response:
            assert response.status == 200


async def test_hop_by_hop_and_spoofed_headers_never_reach_the_upstream(proxy: ProxySetup) -> None:
    spoofed = {
        "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "secret",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "TE": "trailers",
        "X-Gateway-User-Id": "admin",
        "x-gateway-role": "super-admin",
        "X-Gateway-Network-Id": "other",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "gopher",
        "Forwarded": "for=6.6.6.6",
        "X-Request-Id": "client-chosen-id.1",
        "X-Kept": "yes",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/pub/headers", headers=spoofed) as response:
            assert response.status == 200
            body = await response.json()
            # Hop-by-hop headers of the upstream's answer stay on its hop too.
            assert "X-Secret-Hop" not in response.headers
            assert "Keep-Alive" not in response.headers
            assert response.headers["X-Request-Id"] == "client-chosen-id.1"
    received = {name.lower(): value for name, value in body["headers"]}
    for name in ("x-drop-me", "keep-alive", "proxy-authorization", "te", "x-gateway-user-id",
                 "x-gateway-role", "x-gateway-network-id", "forwarded"):
        assert name not in received, name
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["x-forwarded-proto"] == "http"
    assert received["x-forwarded-host"] == proxy.url.removeprefix("http://")
    assert received["x-request-id"] == "client-chosen-id.1"
    assert received["x-kept"] == "yes"


async def test_trusted_proxy_forwarding_headers_are_kept_and_appended(
    tmp_path_factory: pytest.TempPathFactory, proxy: ProxySetup
) -> None:
    from tests.proxy.conftest import in_process_gateway, proxy_config

    config = proxy_config(tmp_path_factory.mktemp("trusted"), proxy.upstreams, proxy.dead_port,
                          {"server": {"trusted_proxies": ["127.0.0.0/8"]}})
    async with in_process_gateway(config) as (url, _app), aiohttp.ClientSession() as session:
        body = await _echo(session, f"{url}/pub/x", headers={
            "Host": "api.eu.amity.co", "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https", "X-Gateway-User-Id": "still-dropped"})
    received = {name.lower(): value for name, value in body["headers"]}
    assert received["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert received["x-forwarded-proto"] == "https"
    assert "x-gateway-user-id" not in received


async def test_bad_request_ids_are_replaced(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/pub/x",
                               headers={"X-Request-Id": "has spaces and ; semicolons"}) as resp:
            body = await resp.json()
            issued = resp.headers["X-Request-Id"]
    assert issued != "has spaces and ; semicolons" and len(issued) == 32
    assert dict((k.lower(), v) for k, v in body["headers"])["x-request-id"] == issued


async def test_policy_decisions_before_forwarding(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/pub/secret/file") as response:
            assert response.status == 403
            assert await response.json() == {
                "status": "error", "code": 400301, "message": "Permission denied"}
        async with session.get(f"{proxy.url}/nowhere") as response:
            assert response.status == 404
            assert (await response.json())["message"] == "Not Found"
        async with session.get(f"{proxy.url}/api/v3/things") as response:
            assert response.status == 401
            assert (await response.json())["message"] == "Unauthorized"
    # A dot-segment cannot walk from a public prefix into a denied one.
    port = int(proxy.url.rsplit(":", 1)[1])
    for raw in ("/pub/%2e%2e/pub/secret/file", "/pub/x/../secret/file", "/pub/a%2fb",
                "/pub/%00"):
        head = f"GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        status, headers, body = await raw_request(port, head)
        assert status == 400, raw
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["code"] == 400000


async def test_declared_length_over_the_limit_is_413_before_any_upload(proxy: ProxySetup) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{proxy.url}/pub/upload", data=b"x" * 10,
            headers={"Content-Length": str(64 * 1024 * 1024 + 1)},
        ) as response:
            assert response.status == 413
            assert await response.json() == {
                "status": "error", "code": 400000, "message": "request too large"}


async def test_chunked_upload_over_the_limit_is_413(proxy: ProxySetup) -> None:
    async def body() -> object:
        chunk = b"y" * (1024 * 1024)
        for _ in range(70):
            yield chunk

    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(f"{proxy.url}/pub/upload", data=body()) as response:
                assert response.status == 413
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            pass  # the gateway may close the connection while the client is still sending


async def test_access_log_line_per_request(proxy: ProxySetup) -> None:
    log = proxy.app[ACCESS_LOG]
    log.stream = io.StringIO()
    async with aiohttp.ClientSession() as session:
        await _echo(session, f"{proxy.url}/pub/logged", headers={
            "Host": "api.eu.amity.co", "X-Request-Id": "trace-me-1"})
    log.flush()
    entries = [json.loads(line) for line in log.stream.getvalue().splitlines()]
    entry = next(e for e in entries if e["requestId"] == "trace-me-1")
    assert entry["method"] == "GET" and entry["path"] == "/pub/logged"
    assert entry["status"] == 200 and entry["route"] == "public"
    assert entry["region"] == "eu" and entry["upstream"] == proxy.upstreams["eu"]
    assert entry["durationMs"] > 0 and entry["bytesOut"] > 0
    assert entry["time"].endswith("Z") and entry["principal"] is None


async def test_a_client_leaving_before_its_answer_is_logged_as_499(proxy: ProxySetup) -> None:
    """Not as 502: the upstream did nothing wrong, and a 5xx would page someone (nginx
    logs this case as 499, "client closed request")."""
    log = proxy.app[ACCESS_LOG]
    log.stream = io.StringIO()
    port = urlsplit(proxy.url).port
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /pub/slow?delay=1 HTTP/1.1\r\nHost: api.eu.amity.co\r\n"
                 b"X-Request-Id: left-early-1\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)  # forwarded, the upstream still thinking
    # A reset: a client that only half-closes still gets its answer (HTTP allows that).
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        await asyncio.sleep(0.02)
        log.flush()
        if "left-early-1" in log.stream.getvalue():
            break
    entries = [json.loads(line) for line in log.stream.getvalue().splitlines()]
    [entry] = [e for e in entries if e["requestId"] == "left-early-1"]
    assert entry["status"] == 499 and entry["upstream"] == proxy.upstreams["eu"]

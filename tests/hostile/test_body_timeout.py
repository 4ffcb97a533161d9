"""Request bodies that stop arriving: 408 with the contract's JSON (or a closed connection)
within `server.body_timeout`, on built-in endpoints and proxied routes alike, and nothing
started is left behind: an upload being streamed upstream is aborted there, never passed
off as complete.

The timeout (30 s by default) is one second here; an in-process gateway with its real
runner, real sockets, a real upstream on loopback that records what it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.config import ServerConfig
from gateway.keys import STORE
from gateway.protocol import BODY_PROGRESS, BODY_TIMEOUT
from gateway.testing.support import REPO, free_port
from tests.proxy.conftest import in_process_gateway, proxy_config

TIMEOUT = 1.0
SLACK = 1.0  # scheduling on a shared 2-core machine
TIMEOUT_JSON = {"status": "error", "code": 400000, "message": "request timeout"}
UPLOAD_POLICY = """
rules:
  - {name: public, match: {path: "/pub/**"}, auth: public}
"""
SLOW_READER_PAUSE = 1.8  # the upstream takes this long to start reading: > TIMEOUT


@dataclass
class Received:
    """One upload as the upstream saw it."""

    size: int
    complete: bool
    error: str | None = None


@dataclass
class Upstream:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def next_upload(self, limit: float = 5) -> Received:
        await asyncio.wait_for(self.arrived.wait(), limit)
        self.arrived.clear()
        return self.received[-1]


def _upstream_app(upstream: Upstream) -> web.Application:
    async def upload(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/slow-reader"):
            await asyncio.sleep(SLOW_READER_PAUSE)
        size = 0
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
        except Exception as exc:  # the gateway cut the upload
            upstream.received.append(Received(size, False, type(exc).__name__))
            upstream.arrived.set()
            return web.Response(status=499)  # to nobody: only the gateway's errors are logged
        upstream.received.append(Received(size, True))
        upstream.arrived.set()
        return web.json_response({"size": size})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"echo:{message.data}")
        return ws

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/pub/ws", websocket)
    app.router.add_route("*", "/pub/{tail:.*}", upload)
    return app


@contextlib.asynccontextmanager
async def _running_upstream() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    runner = web.AppRunner(_upstream_app(upstream), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    upstream.url = f"http://{host}:{port}"
    try:
        yield upstream
    finally:
        await runner.cleanup()


@dataclass
class Gateway:
    port: int
    upstream: Upstream
    api_key: str
    network_id: str
    app: web.Application


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with _running_upstream() as upstream:
        policy = tmp_path / "upload-policy.yaml"
        policy.write_text(UPLOAD_POLICY)
        config = proxy_config(
            tmp_path, {name: upstream.url for name in ("eu", "sg", "us")}, free_port(),
            {"server": {"body_timeout": f"{int(TIMEOUT * 1000)}ms"},
             "policies": [str(REPO / "policies" / "default.yaml"), str(policy)]},
        )
        async with in_process_gateway(config) as (url, app):
            network = await app[STORE].create_network("n", "sg", False)
            yield Gateway(int(url.rsplit(":", 1)[1]), upstream, network.api_key, network.id,
                          app)


async def _read_to_close(reader: asyncio.StreamReader) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def _exchange(port: int, head: bytes, parts: Sequence[bytes] = (),
                    interval: float = 0.1, limit: float = TIMEOUT + 5) -> tuple[float, bytes]:
    """Send `head`, then each of `parts` `interval` apart, while reading whatever the
    gateway sends until it closes the connection; (seconds from the head to the close,
    the bytes received)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(head)
            await writer.drain()
            for part in parts:
                await asyncio.sleep(interval)
                writer.write(part)
                await writer.drain()

    started = time.monotonic()
    sender = asyncio.create_task(send())
    try:
        received = await asyncio.wait_for(_read_to_close(reader), limit)
        return time.monotonic() - started, received
    finally:
        sender.cancel()
        writer.close()


def _answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_request_timeout(elapsed: float, raw: bytes) -> dict[str, str]:
    assert raw, f"closed without an answer after {elapsed:.2f}s"
    status, headers, body = _answer(raw)
    assert status == 408, raw[:300]
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == TIMEOUT_JSON
    assert headers.get("connection", "").lower() == "close"
    assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + SLACK, elapsed
    return headers


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


def test_there_is_a_body_timeout() -> None:
    assert BODY_TIMEOUT == 30.0 and ServerConfig().body_timeout == BODY_TIMEOUT
    assert BODY_PROGRESS <= 1024  # slower than ~34 bytes/s at the default: not arriving


def _session_head(api_key: str, length: int) -> bytes:
    return (b"POST /api/v3/sessions HTTP/1.1\r\nHost: api.amity.co\r\n"
            b"x-api-key: " + api_key.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(length).encode() + b"\r\n\r\n")


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickled"])
async def test_a_stalled_body_on_a_builtin_endpoint_gets_408(
    gateway: Gateway, trickle: bool, caplog: pytest.LogCaptureFixture
) -> None:
    start = b'{"userId": "bob", "deviceId": "d'
    head = _session_head(gateway.api_key, 200) + start
    # Trickled: a byte every 0.1 s, far below BODY_PROGRESS a second.
    parts = [b"1"] * 60 if trickle else []
    elapsed, raw = await _exchange(gateway.port, head, parts)
    headers = _assert_request_timeout(elapsed, raw)
    assert "x-request-id" in headers
    # Nothing of the login happened.
    assert await gateway.app[STORE].get_user(gateway.network_id, "bob") is None
    _no_errors_logged(caplog)


CHUNKED_HEAD = (b"POST /pub/upload HTTP/1.1\r\nHost: api.amity.co\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize("framing", ["chunked", "chunked-trickled", "content-length"])
async def test_a_stalled_proxied_upload_gets_408_and_is_aborted_upstream(
    gateway: Gateway, framing: str, caplog: pytest.LogCaptureFixture
) -> None:
    parts: list[bytes] = []
    if framing == "content-length":  # over the small-body size: streamed upstream
        sent = 100 * 1024
        head = (b"POST /pub/upload HTTP/1.1\r\nHost: api.amity.co\r\n"
                b"Content-Length: 1048576\r\n\r\n" + b"a" * sent)
    else:
        sent = 4096
        head = CHUNKED_HEAD + _chunk(b"a" * sent)
        if framing == "chunked-trickled":
            parts = [_chunk(b"b")] * 60  # 6 bytes every 0.1 s
    elapsed, raw = await _exchange(gateway.port, head, parts)
    _assert_request_timeout(elapsed, raw)
    seen = await gateway.upstream.next_upload()
    assert not seen.complete, seen  # aborted, never passed off as a complete body
    assert sent <= seen.size <= sent + len(parts), seen  # a byte per trickled chunk
    _no_errors_logged(caplog)


async def test_a_stalled_body_over_https_gets_408(tmp_path: Path) -> None:
    """The same over TLS, where the timeout sees the decrypted bytes."""
    https_port = free_port()
    async with _running_upstream() as upstream:
        config = proxy_config(
            tmp_path, {name: upstream.url for name in ("eu", "sg", "us")}, free_port(),
            {"server": {"body_timeout": f"{int(TIMEOUT * 1000)}ms",
                        "https": {"host": "127.0.0.1", "port": https_port,
                                  "cert": "certs/server.pem", "key": "certs/server.key"}},
             "policies": [str(REPO / "policies" / "default.yaml")]},
        )
        async with in_process_gateway(config) as (_url, app):
            network = await app[STORE].create_network("n", "sg", False)
            context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.pem"))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", https_port, ssl=context, server_hostname="localhost")
            try:
                writer.write(_session_head(network.api_key, 200) + b'{"userId": "b')
                started = time.monotonic()
                raw = await asyncio.wait_for(_read_to_close(reader), TIMEOUT + 5)
                elapsed = time.monotonic() - started
            finally:
                writer.close()
    _assert_request_timeout(elapsed, raw)


async def test_a_stalled_small_proxied_body_never_reaches_the_upstream(
    gateway: Gateway,
) -> None:
    head = (b"POST /pub/upload HTTP/1.1\r\nHost: api.amity.co\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"a" * 10)
    elapsed, raw = await _exchange(gateway.port, head)
    _assert_request_timeout(elapsed, raw)
    await asyncio.sleep(0.3)
    assert gateway.upstream.received == []


async def test_a_slow_but_steady_upload_is_not_cut(gateway: Gateway) -> None:
    """2 KiB every 0.2 s for 3 s: slow, but well over BODY_PROGRESS per timeout."""
    parts = [_chunk(b"s" * 2048)] * 15 + [b"0\r\n\r\n"]
    elapsed, raw = await _exchange(
        gateway.port, CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
        parts, interval=0.2,
    )
    status, _, body = _answer(raw)
    assert status == 200, raw[:300]
    assert json.loads(body)["size"] == 15 * 2048
    assert elapsed > 3 * TIMEOUT
    assert (await gateway.upstream.next_upload()).complete


async def test_an_upstream_slow_to_read_is_not_the_clients_delay(gateway: Gateway) -> None:
    """The upstream starts reading only after SLOW_READER_PAUSE: meanwhile the gateway's
    buffer is full and it stops reading from the client, whose body stops arriving
    through no fault of its own."""
    body = b"x" * (32 * 1024 * 1024)  # more than the socket buffers on the way hold
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{gateway.port}/pub/slow-reader", data=body,
        headers={"Host": "api.amity.co"},
    ) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["size"] == len(body)


async def test_a_body_stalled_after_the_answer_closes_the_connection(gateway: Gateway) -> None:
    """Answered without reading the body (no such route): the answer goes out at once,
    and the connection is closed once the rest of the body stops arriving."""
    head = (b"POST /nowhere HTTP/1.1\r\nHost: api.amity.co\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"a" * 10)
    elapsed, raw = await _exchange(gateway.port, head)
    status, _, body = _answer(raw)
    assert status == 404 and json.loads(body)["message"] == "Not Found"
    assert elapsed <= TIMEOUT + SLACK


async def test_a_kept_alive_connection_is_not_timed_between_requests(gateway: Gateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        for _ in range(2):
            writer.write(b"POST /pub/upload HTTP/1.1\r\nHost: api.amity.co\r\n"
                         b"Content-Length: 5\r\n\r\nhello")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            _, headers, _ = _answer(head)
            await reader.readexactly(int(headers["content-length"]))
            await asyncio.sleep(TIMEOUT * 1.5)  # idle: the keep-alive timeout's business
    finally:
        writer.close()


async def test_a_websocket_outlives_the_body_timeout(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(
        f"http://127.0.0.1:{gateway.port}/pub/ws", headers={"Host": "api.amity.co"}
    ) as ws:
        await asyncio.sleep(TIMEOUT * 1.5)
        await ws.send_str("still here")
        assert (await ws.receive_str(timeout=5)) == "echo:still here"

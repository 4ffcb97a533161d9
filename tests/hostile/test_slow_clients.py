"""Slow clients: a request head trickled byte by byte (slowloris), or never sent, is cut
off after the header timeout, and meanwhile everybody else is served.

The timeout (`server.header_timeout`, 20 s) is set to one second here; an in-process
gateway with its real runner, in front of a real upstream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import ServerConfig
from gateway.protocol import HEADER_TIMEOUT
from gateway.testing.support import free_port
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import in_process_gateway, proxy_config

TIMEOUT = 1.0
SLOW_CLIENTS = 20
HEAD = b"GET /pub/x HTTP/1.1\r\nHost: api.amity.co\r\n"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[int]:
    async with running_upstream("sg") as sg, running_upstream("eu") as eu, \
            running_upstream("us") as us:
        config = proxy_config(tmp_path, {"sg": sg, "eu": eu, "us": us}, free_port(),
                              {"server": {"header_timeout": f"{int(TIMEOUT * 1000)}ms"}})
        async with in_process_gateway(config) as (url, _app):
            yield int(url.rsplit(":", 1)[1])


async def _trickle(port: int, head: bytes, interval: float = 0.05,
                   limit: float = TIMEOUT + 3) -> tuple[float, bytes]:
    """Send `head` one byte at a time, then keep sending header bytes, until the gateway
    closes the connection; (seconds until then, what it sent back)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    data = head + b"X-Slow: " + b"a" * 10_000
    received = b""
    try:
        for byte in data:
            if time.monotonic() - started > limit:
                raise AssertionError(f"still open after {limit}s of trickling")
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                chunk = await asyncio.wait_for(reader.read(1024), interval)
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break
            received += chunk
            if not chunk:
                break
        return time.monotonic() - started, received
    finally:
        writer.close()


def test_there_is_a_header_timeout() -> None:
    assert 0 < HEADER_TIMEOUT <= 60
    assert ServerConfig().header_timeout == HEADER_TIMEOUT


async def test_slowloris_is_closed_and_others_are_served(gateway: int) -> None:
    started = time.monotonic()
    slow = [asyncio.create_task(_trickle(gateway, HEAD)) for _ in range(SLOW_CLIENTS)]
    await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(f"http://127.0.0.1:{gateway}/pub/ok") as response:
                assert response.status == 200
                await response.read()
    served = time.monotonic() - started
    results = await asyncio.gather(*slow)
    for elapsed, received in results:
        assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + 1.5, elapsed
        assert received == b"", received  # closed, not answered: there is no request yet
    # Everybody else was served while every slow client still held its connection.
    assert served < min(elapsed for elapsed, _ in results), (served, results)


async def test_a_connection_that_sends_nothing_is_closed(gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    started = time.monotonic()
    try:
        assert await asyncio.wait_for(reader.read(), TIMEOUT + 2) == b""
    finally:
        writer.close()
    assert TIMEOUT * 0.9 <= time.monotonic() - started <= TIMEOUT + 1.5


async def test_a_slow_second_head_on_a_kept_alive_connection_is_closed(gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    try:
        writer.write(HEAD + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        started = time.monotonic()
        for byte in HEAD + b"X-Slow: " + b"a" * 100:
            writer.write(bytes([byte]))
            try:
                if await asyncio.wait_for(reader.read(1024), 0.05) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
        else:
            raise AssertionError("the slow second head was never cut off")
        assert TIMEOUT * 0.9 <= time.monotonic() - started <= TIMEOUT + 1.5
    finally:
        writer.close()


async def test_a_slow_body_and_a_slow_upstream_are_not_cut_by_the_header_timeout(
    gateway: int,
) -> None:
    """The timer covers request heads only: not a body uploaded slowly, not the time an
    upstream takes to answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    try:
        writer.write(b"POST /pub/upload HTTP/1.1\r\nHost: api.amity.co\r\nContent-Length: 15\r\n"
                     b"Connection: close\r\n\r\n")
        for _ in range(15):  # 1.5 s for the body: longer than the header timeout
            await asyncio.sleep(0.1)
            writer.write(b"b")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert b'"size": 15' in answer
    finally:
        writer.close()
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{gateway}/pub/slow?delay=1.5") as response:
        assert response.status == 200
        assert (await response.json())["slow"] is True

"""The lean upstream client against raw upstream servers that answer in every framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from multidict import CIMultiDict
from yarl import URL

from gateway.proxy.upstream_client import (
    UpstreamBroken,
    UpstreamPool,
    UpstreamRefused,
    UpstreamTimeout,
)
from gateway.testing.support import free_port

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def _serve(answer: Answer) -> AsyncIterator[tuple[URL, list[int]]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield URL(f"http://127.0.0.1:{port}/path?q=1"), connections


async def _get(pool: UpstreamPool, url: URL, read_timeout: float = 2) -> tuple[int, bytes]:
    response = await pool.request(url, "GET", CIMultiDict({"X-Test": "1"}), None,
                                  connect_timeout=2, read_timeout=read_timeout)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_keep_alive_connections_are_reused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await _read_head(reader)
            assert head.startswith(b"GET /path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    pool = UpstreamPool()
    async for url, connections in _serve(answer):
        for _ in range(5):
            assert await _get(pool, url) == (200, b"ok")
        assert len(connections) == 1
    pool.close()


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
         b"abcde"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.0 200 OK\r\n\r\nold style", b"old style"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
async def test_every_response_framing(raw: bytes, body: bytes) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(raw)
        await writer.drain()
        if b"Content-Length" not in raw and b"chunked" not in raw and b"204" not in raw:
            writer.close()

    pool = UpstreamPool()
    async for url, _connections in _serve(answer):
        status, received = await _get(pool, url)
        assert (status, received) == (int(raw.split()[1]), body)
    pool.close()


async def test_a_stale_kept_alive_connection_is_retried_on_a_fresh_one() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        await writer.drain()
        # then close without saying so: the pooled connection is stale

    pool = UpstreamPool()
    async for url, connections in _serve(answer):
        assert await _get(pool, url) == (200, b"x")
        await asyncio.sleep(0.05)
        assert await _get(pool, url) == (200, b"x")
        assert len(connections) == 2
    pool.close()


async def test_refused_silent_and_broken_upstreams() -> None:
    pool = UpstreamPool()
    with pytest.raises(UpstreamRefused):
        await _get(pool, URL(f"http://127.0.0.1:{free_port()}/"))

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async for url, _ in _serve(silent):
        with pytest.raises(UpstreamTimeout):
            await _get(pool, url, read_timeout=0.3)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async for url, _ in _serve(garbage):
        with pytest.raises(UpstreamBroken):
            await _get(pool, url)
    pool.close()


async def test_header_values_with_line_breaks_are_never_sent() -> None:
    pool = UpstreamPool()
    async for url, connections in _serve(lambda r, w: asyncio.sleep(0)):
        for value in ("a\r\nX-Injected: 1", "a\nb", "nul\x00"):
            with pytest.raises(ValueError):
                await pool.request(url, "GET", CIMultiDict({"X-Gateway-User-Id": value}), None,
                                   connect_timeout=1, read_timeout=1)
        assert connections == []
    pool.close()

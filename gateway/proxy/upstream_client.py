"""A lean HTTP/1.1 keep-alive client for forwarding to upstreams.

aiohttp's ClientSession spent about 40% of the proxy's CPU per request on work a proxy
does not need (cookie jars, URL joining, header merging, tracing hooks, response
objects). This client does only what forwarding needs: one pooled connection per
request, the request head and body written in one call, the response parsed by
httptools (the C parser uvicorn uses) and its body handed over as chunks with
back-pressure. WebSockets still go through aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import httptools
from multidict import CIMultiDict
from yarl import URL

_UNSAFE = re.compile(r"[\r\n\x00]")
READ_HIGH_WATER = 256 * 1024  # stop reading from the upstream while this much is unread
MAX_IDLE_PER_ORIGIN = 256
MAX_HEAD_BYTES = 64 * 1024


class UpstreamRefused(Exception):
    """No connection could be made: nothing was sent, another upstream may be tried."""


class UpstreamTimeout(Exception):
    """Connecting, or waiting for the next byte of the answer, took too long."""


class UpstreamBroken(Exception):
    """The connection failed after the request was (at least partly) sent."""

    def __init__(self, message: str, *, reused: bool = False) -> None:
        super().__init__(message)
        self.reused = reused  # a kept-alive connection the upstream had already closed


@dataclass(eq=False)
class UpstreamResponse:
    status: int
    reason: str
    headers: CIMultiDict[str]
    content_length: int | None
    _connection: _Connection = field(repr=False)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self._connection.body_chunks()

    def release(self) -> None:
        self._connection.finish()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, origin: tuple[str, str, int]) -> None:
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._reset_message()

    def _reset_message(self) -> None:
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._header_name = b""
        self._head_bytes = 0
        self._head: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._read_timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._arm_timer()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"malformed answer from the upstream: {exc}"))
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if exc is None and self._until_eof():
            self.on_message_complete()  # a body without length ends with the connection
        if not self._complete:
            self._fail(UpstreamBroken(f"upstream closed the connection: {exc or 'EOF'}",
                                      reused=self.reused and self._head_bytes == 0))

    def pause_writing(self) -> None:
        """Request bodies are small on this path; nothing to throttle."""

    def _until_eof(self) -> bool:
        headers_seen = self._head is not None and self._head.done() and self._error is None
        return headers_seen and "Content-Length" not in self._headers and (
            "chunked" not in self._headers.get("Transfer-Encoding", "").lower())

    # -- httptools callbacks ----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise httptools.HttpParserError("response head too large")
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_status(self, status: bytes) -> None:
        self._reason = status.decode("latin-1", "replace")
        self._head_bytes += len(status)

    def on_headers_complete(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and self.transport and not self._reading_paused:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()  # only meaningful right here
        self._complete = True
        self._cancel_timer()
        self._wake()

    # -- request / response -----------------------------------------------------------

    async def send(self, head: bytes, body: bytes | None, read_timeout: float) -> UpstreamResponse:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._head = loop.create_future()
        self._reason = ""
        self._read_timeout = read_timeout
        self.transport.write(head + body if body else head)
        self._arm_timer()
        await self._head
        if self._error is not None:
            raise self._error
        length = self._headers.get("Content-Length")
        return UpstreamResponse(
            status=self._parser.get_status_code(),
            reason=self._reason,
            headers=self._headers,
            content_length=int(length) if length is not None and length.isdigit() else None,
            _connection=self,
        )

    async def body_chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._reading_paused and self._buffered < READ_HIGH_WATER // 2:
                    assert self.transport is not None
                    self.transport.resume_reading()
                    self._reading_paused = False
                yield chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return
            self._wakeup = loop.create_future()
            await self._wakeup

    def finish(self) -> None:
        """Back to the pool if the exchange completed cleanly, else closed."""
        self._cancel_timer()
        if self._complete and not self.closed and self._keep_alive:
            self._parser = httptools.HttpResponseParser(self)
            self._reset_message()
            self.reused = True
            self._pool.put_back(self)
        else:
            self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_result(None)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _arm_timer(self) -> None:
        if self._read_timeout <= 0 or self._complete:
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._read_timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._fail(UpstreamTimeout("upstream did not answer in time"))
        self._close()


class UpstreamPool:
    """Idle keep-alive connections per origin (scheme, host, port)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], collections.deque[_Connection]] = {}
        self._ssl = ssl_context or ssl.create_default_context()

    async def request(
        self,
        url: URL,
        method: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> UpstreamResponse:
        """Send one request; a stale kept-alive connection is retried once, fresh."""
        head = _request_head(method, url, headers, body)
        connection = await self._connection(url, connect_timeout)
        try:
            return await connection.send(head, body, read_timeout)
        except UpstreamBroken as exc:
            connection._close()
            if not exc.reused:
                raise
        connection = await self._connect(_origin(url), connect_timeout)
        try:
            return await connection.send(head, body, read_timeout)
        except BaseException:
            connection._close()
            raise

    async def _connection(self, url: URL, connect_timeout: float) -> _Connection:
        origin = _origin(url)
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return await self._connect(origin, connect_timeout)

    async def _connect(self, origin: tuple[str, str, int], limit: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            transport, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self, origin), host, port,
                    ssl=self._ssl if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                ),
                limit or None,
            )
        except TimeoutError:
            raise UpstreamRefused(f"connect to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamRefused(f"cannot connect to {host}:{port}: {exc}") from None
        # uvloop may call connection_made after create_connection has returned.
        if connection.transport is None:
            connection.transport = transport
        return connection

    def put_back(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.origin, collections.deque())
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection._close()
        else:
            idle.append(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection._close()
        self._idle.clear()


def _origin(url: URL) -> tuple[str, str, int]:
    assert url.host is not None and url.port is not None
    return url.scheme, url.host, url.port


def _request_head(
    method: str, url: URL, headers: CIMultiDict[str], body: bytes | None
) -> bytes:
    host = url.host or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if url.explicit_port is not None:
        host = f"{host}:{url.explicit_port}"
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            continue
        if _UNSAFE.search(value) or _UNSAFE.search(name):
            raise ValueError(f"header {name!r} carries a line break or NUL")  # no smuggling
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

"""A lean HTTP/1.1 keep-alive client for forwarding to upstreams.

aiohttp's ClientSession spent about 40% of the proxy's CPU per request on work a proxy
does not need (cookie jars, URL joining, header merging, tracing hooks, response
objects). This client does only what forwarding needs: one pooled connection per
request, the request head and body written in one call, the response parsed by
httptools (the C parser uvicorn uses) and its body handed over as chunks with
back-pressure. WebSockets still go through aiohttp.

A connection serves an exchange in one of two ways. Awaited (`send`, then
`UpstreamResponse`): the aiohttp path and every streamed answer. Or driven by callbacks
(`exchange` with an `ExchangeListener`): the data plane's common case, a pooled
connection and an answer small enough to hold, with no task or future per request.
A listener may stop listening at the head (`detach`) and carry on awaiting the body.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Protocol, cast

import httptools
from multidict import CIMultiDict
from yarl import URL

from gateway.proxy.deadline import Deadline
from gateway.proxy.write_batch import BUSY, Outbox, WriteBatch

_UNSAFE = re.compile(r"[\r\n\x00]")
READ_HIGH_WATER = 256 * 1024  # stop reading from the upstream while this much is unread
MAX_IDLE_PER_ORIGIN = 256
MAX_HEAD_BYTES = 64 * 1024
# A request that must not be sent twice goes only on a connection used this recently.
FRESH_FOR = 1.0
# Set by the head builder, never copied from the caller's headers.
_FRAMING = frozenset({"host", "content-length", "transfer-encoding"})

Origin = tuple[str, str, int]  # scheme, host, port
RawFields = list[tuple[bytes, bytes]]


class UpstreamRefused(Exception):
    """No connection could be made: nothing was sent, another upstream may be tried."""


class UpstreamTimeout(Exception):
    """Connecting, or waiting for the next byte of the answer, took too long."""


class UpstreamBroken(Exception):
    """The connection failed after the request was (at least partly) sent."""

    def __init__(self, message: str, *, reused: bool = False) -> None:
        super().__init__(message)
        self.reused = reused  # a kept-alive connection the upstream had already closed


class ExchangeListener(Protocol):
    """Told, on the event loop, how a callback-driven exchange goes. Exactly one of
    `upstream_complete` and `upstream_failed` ends it, unless the listener detaches."""

    def upstream_head(self, connection: UpstreamConnection) -> None: ...
    def upstream_complete(self, connection: UpstreamConnection) -> None: ...
    def upstream_failed(self, connection: UpstreamConnection, error: BaseException) -> None: ...


@dataclass(eq=False)
class UpstreamResponse:
    status: int
    reason: str
    raw_headers: RawFields
    content_length: int | None
    _connection: UpstreamConnection = field(repr=False)

    @property
    def headers(self) -> CIMultiDict[str]:
        return decoded_headers(self.raw_headers)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self._connection.body_chunks()

    def release(self) -> None:
        self._connection.finish()


def decoded_headers(raw: Iterable[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    return CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw)


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self._outbox: Outbox | None = None  # the data plane's requests (`exchange`)
        self.closed = False
        self.reused = False
        self.in_use = False  # a request was sent and its answer is not through yet
        self.idle_since = 0.0  # time.monotonic() when it went back to the pool
        self._deadline: Deadline | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reset_message()

    def _reset_message(self) -> None:
        self.raw_headers: RawFields = []
        self.status = 0
        self.reason = ""
        self.content_length: int | None = None
        self._chunked = False
        self._head_bytes = 0
        self._answered = False  # a byte of the answer arrived (an interim one counts)
        self._head: asyncio.Future[None] | None = None
        self._head_seen = False
        self._told = False  # the listener heard of the head
        self._listener: ExchangeListener | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._read_timeout = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self._outbox = Outbox(self._pool.writes, self.transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_use:
            # Nothing was asked: whatever this is, it must not become the answer to the
            # next request sent on this connection.
            self._close()
            return
        if self._deadline is not None:
            self._deadline.push(self._read_timeout)
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._complete and self._error is None:
                self._keep_alive = False  # bytes beyond the answer: never reused
            else:
                self._fail(UpstreamBroken(f"malformed answer from the upstream: {exc}"))
                self._close()
                return
        # Listeners hear of the head and the end only once the parser is done with the
        # bytes: a listener may hand this connection back to the pool, and send on it again.
        listener = self._listener
        if listener is not None and self._head_seen and self._error is None:
            if self._complete:
                self._listener = None
                listener.upstream_complete(self)
            elif not self._told:
                self._told = True
                listener.upstream_head(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._deadline is not None:
            self._deadline.cancel()
        if exc is None and self._until_eof():
            self.on_message_complete()  # a body without length ends with the connection
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.upstream_complete(self)
        if not self._complete:
            self._fail(UpstreamBroken(f"upstream closed the connection: {exc or 'EOF'}",
                                      reused=self.reused and not self._answered))

    def pause_writing(self) -> None:
        """Request bodies are small on this path; nothing to throttle."""

    def _until_eof(self) -> bool:
        return self._head_seen and self._error is None and self.content_length is None \
            and not self._chunked

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request
            raise httptools.HttpParserError("bytes after the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise httptools.HttpParserError("response head too large")
        self.raw_headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            if self.content_length is None and value.strip().isdigit():
                self.content_length = int(value)
        elif lower == b"transfer-encoding" and b"chunked" in value.lower():
            self._chunked = True

    def on_status(self, status: bytes) -> None:
        self.reason = status.decode("latin-1", "replace")
        self._head_bytes += len(status)

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status == 101:  # no upgrade was asked for on this path
            raise httptools.HttpParserError("switching protocols on a plain request")
        if self.status < 200:  # 100, 103: interim, the answer is still to come
            return
        self._head_seen = True
        if self._chunked:
            self.content_length = None  # Transfer-Encoding wins (RFC 9112 6.3)
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
        if not self._head_seen:  # the end of an interim answer: forget it
            self.raw_headers, self.content_length, self._chunked = [], None, False
            self._head_bytes = 0
            return
        self._keep_alive = self._parser.should_keep_alive()  # only meaningful right here
        self._complete = True
        if self._deadline is not None:
            self._deadline.disarm()
        self._wake()

    # -- request / response -----------------------------------------------------------

    def exchange(self, head: bytes, body: bytes | None, read_timeout: float,
                 listener: ExchangeListener) -> None:
        """Send a request; `listener` hears of the answer (see ExchangeListener)."""
        assert self._outbox is not None
        self._listener = listener
        self._sending(read_timeout)
        self._outbox.write(head + body if body else head)  # maybe held: see write_batch

    def detach(self) -> UpstreamResponse:
        """Stop calling the listener (after its `upstream_head`): the rest of the answer
        is awaited through the response returned."""
        self._listener = None
        return self._response()

    async def send(self, head: bytes, body: bytes | None, read_timeout: float
                   ) -> UpstreamResponse:
        assert self.transport is not None
        self._head = asyncio.get_running_loop().create_future()
        self._sending(read_timeout)
        self.transport.write(head + body if body else head)
        await self._head
        if self._error is not None:
            raise self._error
        return self._response()

    def _sending(self, read_timeout: float) -> None:
        """A request goes out now: in use, and the answer's time-out armed."""
        self.in_use = True
        self._read_timeout = read_timeout
        if read_timeout > 0:
            if self._deadline is None:
                self._deadline = Deadline(asyncio.get_running_loop())
            self._deadline.arm(read_timeout, self._timed_out)

    def _response(self) -> UpstreamResponse:
        return UpstreamResponse(self.status, self.reason, self.raw_headers,
                                self.content_length, self)

    def take_body(self) -> bytes:
        """The whole body of a completed answer."""
        chunks, self._chunks = self._chunks, collections.deque()
        self._buffered = 0
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    def body_chunks(self) -> AsyncIterator[bytes]:
        return _BodyChunks(self)

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body as it arrives, None after its end."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._reading_paused and self._buffered < READ_HIGH_WATER // 2:
                    assert self.transport is not None
                    self.transport.resume_reading()
                    self._reading_paused = False
                return chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup

    def finish(self) -> None:
        """Back to the pool if the exchange completed cleanly, else closed."""
        if self._deadline is not None:
            self._deadline.disarm()
        if self._complete and not self.closed and self._keep_alive:
            # The parser is kept: after a complete kept-alive message llhttp starts the
            # next one afresh (an answer that failed to parse never comes back here).
            self._reset_message()
            self.reused = True
            self.in_use = False
            self._pool.put_back(self)
        else:
            self._listener = None
            self._close()

    def _close(self) -> None:
        self.closed = True
        if self._outbox is not None:
            self._outbox.drop()  # a request not sent yet is abandoned with the connection
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Stop listening and drop the connection at once (never back to the pool)."""
        self._listener = None
        self.closed = True
        if self._outbox is not None:
            self._outbox.drop()
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_result(None)
        self._wake()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.upstream_failed(self, self._error)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _timed_out(self) -> None:
        self._fail(UpstreamTimeout("upstream did not answer in time"))
        self._close()


class UpstreamPool:
    """Idle keep-alive connections per origin (scheme, host, port)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, *,
                 hold_writes_from: int = BUSY) -> None:
        self._idle: dict[Origin, collections.deque[UpstreamConnection]] = {}
        self._ssl = ssl_context or ssl.create_default_context()
        # The data plane's writes, to its clients and to upstreams (see write_batch).
        self.writes = WriteBatch(hold_writes_from)

    def idle(self, origin: Origin, *, idempotent: bool = True) -> UpstreamConnection | None:
        """A kept-alive connection to `origin` ready for a request, if there is one.

        A request that must not be sent twice (POST, PATCH) takes only a connection used
        within the last `FRESH_FOR` seconds: one the upstream may be closing for being
        idle could take the request and drop it, and it cannot be retried."""
        idle = self._idle.get(origin)
        while idle:
            if not idempotent and idle[-1].idle_since < time.monotonic() - FRESH_FOR:
                return None  # the newest is too old, so are the others: connect
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

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
        """Send one request to `url` (see `send`)."""
        head = request_head(method, url.raw_path_qs, host_header(url), headers, body)
        return await self.send(origin_of(url), head, body, connect_timeout=connect_timeout,
                               read_timeout=read_timeout)

    async def send(self, origin: Origin, head: bytes, body: bytes | None, *,
                   connect_timeout: float, read_timeout: float, idempotent: bool = True
                   ) -> UpstreamResponse:
        """Send one request; for an idempotent one, a kept-alive connection found closed
        before any byte of the answer is retried once, fresh."""
        connection = self.idle(origin, idempotent=idempotent) or await self._connect(
            origin, connect_timeout)
        try:
            return await connection.send(head, body, read_timeout)
        except UpstreamBroken as exc:
            connection._close()
            if not (exc.reused and idempotent):
                raise
        except BaseException:  # a time-out, or the client left (cancelled): not reusable
            connection._close()
            raise
        connection = await self._connect(origin, connect_timeout)
        try:
            return await connection.send(head, body, read_timeout)
        except BaseException:
            connection._close()
            raise

    async def _connect(self, origin: Origin, limit: float) -> UpstreamConnection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            transport, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self, origin), host, port,
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

    def put_back(self, connection: UpstreamConnection) -> None:
        # Not the loop's clock: on Python 3.11, asyncio.get_running_loop() is a system
        # call (getpid), once per proxied request here.
        connection.idle_since = time.monotonic()
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


def origin_of(url: URL) -> Origin:
    assert url.host is not None and url.port is not None
    return url.scheme, url.host, url.port


def host_header(url: URL) -> str:
    """The `Host` an upstream at `url` is sent."""
    host = url.host or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if url.explicit_port is not None:
        host = f"{host}:{url.explicit_port}"
    return host


def request_head(method: str, target: str, host: str, headers: CIMultiDict[str],
                 body: bytes | None) -> bytes:
    """The request head sent upstream: `Host` and the framing are the gateway's own."""
    if "Host" in headers or "Content-Length" in headers or "Transfer-Encoding" in headers:
        fields = [(n, v) for n, v in headers.items() if n.lower() not in _FRAMING]
    else:  # the usual case: nothing to leave out, no name to fold per header
        fields = list(headers.items())
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in fields]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # One scan of the whole head: line breaks only where the lines above put them.
    breaks = len(lines) + 1  # the request line and Host share the first entry
    if text.count("\n") != breaks or text.count("\r") != breaks or "\x00" in text:
        _refuse_unsafe(fields)
    return text.encode("utf-8")


def _refuse_unsafe(headers: Iterable[tuple[str, str]]) -> None:
    for name, value in headers:
        if _UNSAFE.search(value) or _UNSAFE.search(name):
            raise ValueError(f"header {name!r} carries a line break or NUL")  # no smuggling
    raise ValueError("the request line carries a line break or NUL")


class _BodyChunks:
    """An answer's body as an async iterator (a class, not an async generator: the
    compiled build, see setup.py, has no async generators)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: UpstreamConnection) -> None:
        self._connection = connection

    def __aiter__(self) -> _BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._connection.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

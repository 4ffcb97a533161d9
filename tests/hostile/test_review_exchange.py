"""The data plane's upstream exchange against an upstream whose answers are written byte
by byte: interim (1xx) answers, bodiless answers, an upstream that closes on a request
it has read, a stray answer on an idle kept-alive connection, clients that leave or
pipeline without reading. Real sockets on loopback, a real gateway in this process; the
last case drives the client side of one data-plane connection through a transport the
test controls, so that the moment its writes pause is exact (on real sockets it depends
on the kernel's buffers, and happens too).

Each case says what a client must see; two are baselines (what a retry is for, the
framing the awaited path always had)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest

from gateway.app import build_app
from gateway.bootstrap import init_files
from gateway.config import load_config
from gateway.dataplane.connection import DataPlaneConnection
from gateway.dataplane.plane import DataPlane
from gateway.keys import UPSTREAMS
from gateway.server import make_runner
from gateway.testing.support import free_port
from tests.proxy.conftest import in_process_gateway, proxy_config

HOST = b"Host: api.sg.amity.co\r\n"
BIG = 60_000  # an answer the data plane holds whole (<= 64 KiB)
FULL = 64 * 1024  # the largest such answer: alone it fills a transport's write buffer


@dataclass
class Seen:
    connection: int
    method: str
    path: str
    body: bytes


class _Requests:
    """httptools callbacks: the requests read off one upstream connection."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str, bytes]] = []
        self._url = b""
        self._body = b""
        self.parser = httptools.HttpRequestParser(self)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        self.done.append((method, self._url.decode(), self._body))
        self._url, self._body = b"", b""


def _answer(body: bytes, extra: bytes = b"", status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
            + body)


@dataclass
class ScriptedUpstream:
    """A loopback HTTP/1.1 upstream; `answer` writes each answer's bytes itself."""

    seen: list[Seen] = field(default_factory=list)
    interim_sent: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0
    open: int = 0  # connections the gateway has not closed yet
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        index = next(self._ids)
        requests = _Requests()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                requests.parser.feed_data(data)
                while requests.done:
                    method, path, body = requests.done.pop(0)
                    self.seen.append(Seen(index, method, path, body))
                    if not await self.answer(method, path, writer):
                        return
        except (ConnectionError, httptools.HttpParserError):
            return
        finally:
            self.open -= 1
            writer.close()

    def count(self, method: str, path: str) -> int:
        return sum(1 for s in self.seen if (s.method, s.path) == (method, path))

    async def answer(self, method: str, path: str, writer: asyncio.StreamWriter) -> bool:
        """Write the answer to one request; False closes the connection instead."""
        if path == "/pub/early":
            # An interim 103, then the final answer once the test says so.
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            await writer.drain()
            self.interim_sent.set()
            await self.release.wait()
            writer.write(_answer(b"answer for /pub/early", b"Set-Cookie: session=early\r\n"))
        elif path == "/pub/no-content":
            writer.write(b"HTTP/1.1 204 No Content\r\nX-Upstream: scripted\r\n\r\n")
        elif path == "/pub/not-modified":
            writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
        elif path in ("/pub/charge", "/pub/retry") and self.count(method, path) == 1:
            return False  # read the request, then hang up without a word
        elif path == "/pub/switch":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                         b"Upgrade: other\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(8)  # holds the connection: the gateway must give up
        elif path == "/pub/double":
            writer.write(_answer(b"answer for /pub/double"))
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(_answer(b"stray"))  # an answer nobody asked for
        elif path == "/pub/slowish":
            await asyncio.sleep(0.5)
            writer.write(_answer(b"late"))
        elif path == "/pub/big":
            writer.write(_answer(b"x" * BIG))
        elif path == "/pub/full":
            writer.write(_answer(b"f" * FULL))
        else:
            writer.write(_answer(b"answer for " + path.encode()))
        await writer.drain()
        return True


@pytest.fixture
async def scripted(request: pytest.FixtureRequest, tmp_path: Path
                   ) -> AsyncIterator[tuple[int, ScriptedUpstream]]:
    """(the gateway's port, the one upstream every region sends to); parametrised
    indirectly with `server:` settings to override."""
    upstream = ScriptedUpstream()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        config = _config(tmp_path, url, getattr(request, "param", {}))
        async with in_process_gateway(config) as (gateway, _app):
            yield int(gateway.rsplit(":", 1)[1]), upstream
    finally:
        server.close()


def _config(folder: Path, url: str, server: dict[str, str]) -> Path:
    return proxy_config(folder, {"eu": url, "sg": url, "us": url}, free_port(), {
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [url]},
                    "eu": {"hosts": ["api.eu.amity.co"], "upstreams": [url]},
                    "us": {"hosts": ["api.us.amity.co"], "upstreams": [url]}},
        "server": server,
    })


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class Answers:
    """Every message read off one client connection, interim ones included."""

    def __init__(self) -> None:
        self.done: list[Answer] = []
        self._headers: list[tuple[str, str]] = []
        self._body = b""
        self._parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append(Answer(self._parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = [], b""

    def final(self) -> list[Answer]:
        return [a for a in self.done if not 100 <= a.status < 200]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.answers = Answers()

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, method: str, path: str, body: bytes = b"") -> None:
        length = b"Content-Length: %d\r\n" % len(body) if body else b""
        self.writer.write(b"%s %s HTTP/1.1\r\n%s%s\r\n%s"
                          % (method.encode(), path.encode(), HOST, length, body))

    async def finals(self, count: int, timeout: float = 3.0) -> list[Answer]:
        """The first `count` final answers; fewer if the wait runs out or it closes."""
        with contextlib.suppress(TimeoutError, ConnectionError, httptools.HttpParserError,
                                 httptools.HttpParserUpgrade):
            async with asyncio.timeout(timeout):
                while len(self.answers.final()) < count:
                    data = await self.reader.read(65536)
                    if not data:
                        break
                    self.answers._parser.feed_data(data)
        return self.answers.final()

    def close(self) -> None:
        self.writer.close()

    def reset(self) -> None:
        """Leave at once, with a TCP reset (the gateway learns it on its next read)."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def _warm(port: int) -> None:
    """One request first, so the next goes out on a kept-alive pooled connection (the
    callback-driven exchange)."""
    client = await Client.open(port)
    client.send("GET", "/pub/warm")
    assert [a.body for a in await client.finals(1)] == [b"answer for /pub/warm"]
    client.close()


@pytest.mark.parametrize("pooled", [True, False], ids=["callbacks", "awaited"])
async def test_an_interim_answer_leaves_the_final_one_with_its_own_request(
        scripted: tuple[int, ScriptedUpstream], pooled: bool) -> None:
    """A 103 is not the answer. Taken for it, the upstream connection went back to the
    pool with the real answer still to come, and the next request on it (anyone's) got
    that answer, Set-Cookie and all."""
    port, upstream = scripted
    if pooled:
        await _warm(port)
    first = await Client.open(port)
    first.send("GET", "/pub/early")
    await asyncio.wait_for(upstream.interim_sent.wait(), 3)
    await asyncio.sleep(0.2)
    second = await Client.open(port)  # another client, maybe another user
    second.send("GET", "/pub/b")
    await asyncio.sleep(0.2)
    upstream.release.set()
    theirs = await second.finals(1)
    mine = await first.finals(1)
    first.close()
    second.close()
    assert [(a.status, a.body, a.header("Set-Cookie")) for a in theirs] == [
        (200, b"answer for /pub/b", [])]
    assert [(a.status, a.body) for a in mine] == [(200, b"answer for /pub/early")]


@pytest.mark.parametrize("path", ["/pub/no-content", "/pub/not-modified"])
async def test_bodiless_answers_carry_no_content_length(
        scripted: tuple[int, ScriptedUpstream], path: str) -> None:
    """RFC 9110 8.6: no Content-Length on a 204, and on a 304 only the length a 200 would
    have; the callback path wrote `Content-Length: 0`."""
    port, _upstream = scripted
    await _warm(port)
    client = await Client.open(port)
    client.send("GET", path)
    answers = await client.finals(1)
    client.close()
    assert [a.status for a in answers] == [204 if path == "/pub/no-content" else 304]
    assert answers[0].header("Content-Length") == []
    assert answers[0].header("Transfer-Encoding") == []


async def test_bodiless_answers_on_a_fresh_connection_carry_no_content_length(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    """Baseline: the awaited path (no pooled connection yet) frames it as the case above
    expects."""
    port, _upstream = scripted
    client = await Client.open(port)
    client.send("GET", "/pub/no-content")
    answers = await client.finals(1)
    client.close()
    assert [a.status for a in answers] == [204]
    assert answers[0].header("Content-Length") == []


async def test_a_post_the_upstream_read_is_not_sent_twice(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    """RFC 9112 9.3.1: a proxy does not retry a non-idempotent request by itself. A
    kept-alive connection closed before any byte of the answer counted as "reused" and
    the POST went again on a new connection, although the upstream had read it."""
    port, upstream = scripted
    await _warm(port)
    client = await Client.open(port)
    client.send("POST", "/pub/charge", b"pay 100")
    answers = await client.finals(1, timeout=5)
    client.close()
    assert upstream.count("POST", "/pub/charge") == 1
    assert [a.status for a in answers] == [502]


async def test_a_get_the_upstream_dropped_on_a_reused_connection_is_retried(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    """Baseline, what the retry is for: an idempotent request goes again, once, fresh."""
    port, upstream = scripted
    await _warm(port)
    client = await Client.open(port)
    client.send("GET", "/pub/retry")
    answers = await client.finals(1)
    client.close()
    assert [a.body for a in answers] == [b"answer for /pub/retry"]
    assert upstream.count("GET", "/pub/retry") == 2


@pytest.mark.parametrize("pooled", [True, False], ids=["callbacks", "awaited"])
async def test_a_switching_protocols_answer_to_a_plain_request_is_a_502(
        scripted: tuple[int, ScriptedUpstream], pooled: bool) -> None:
    """httptools raises HttpParserUpgrade on a 101, which data_received did not catch: on
    callbacks the client waited with no time-out at all; awaited, it got a bare 101."""
    port, _upstream = scripted
    if pooled:
        await _warm(port)
    client = await Client.open(port)
    client.send("GET", "/pub/switch")
    answers = await client.finals(1, timeout=6)  # proxy.read_timeout is 2 s
    client.close()
    assert [a.status for a in answers] == [502]


async def test_a_stray_answer_on_an_idle_connection_reaches_nobody(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    """Bytes on an idle pooled connection were parsed and kept, and became (part of) the
    answer of the next request sent on it."""
    port, _upstream = scripted
    await _warm(port)
    first = await Client.open(port)
    first.send("GET", "/pub/double")
    assert [a.body for a in await first.finals(1)] == [b"answer for /pub/double"]
    first.close()
    await asyncio.sleep(0.3)  # the stray answer is in
    second = await Client.open(port)
    second.send("GET", "/pub/b")
    answers = await second.finals(1)
    second.close()
    assert [(a.status, a.body) for a in answers] == [(200, b"answer for /pub/b")]


async def test_clients_that_leave_mid_request_leave_no_upstream_connection_behind(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    """A client that resets while its request waits on a new upstream connection cancels
    UpstreamPool.send; the connection was then neither pooled nor closed, one more open
    socket per such client for as long as the upstream keeps it."""
    port, upstream = scripted
    for _ in range(8):
        client = await Client.open(port)
        client.send("GET", "/pub/slowish")
        await asyncio.sleep(0.1)
        client.reset()
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # every answer is in
    # Each request found no idle connection (the one before it was still waiting), so
    # each opened its own; none finished, so none may stay open or pooled.
    assert upstream.open == 0, f"{upstream.open} upstream connections held, unusable"


async def _pipeline_without_reading(port: int, requests: int
                                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client with a small receive buffer that sends `requests` GETs of `BIG` bytes
    at once, and reads nothing (yet)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"".join(b"GET /pub/big HTTP/1.1\r\n" + HOST + b"\r\n"
                          for _ in range(requests)))
    await writer.drain()
    return reader, writer


async def test_a_client_that_never_reads_stops_being_served(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    """Answers up to 64 KiB were written whatever the write buffer held, so one client
    pipelining small requests without reading made the gateway buffer without bound."""
    port, upstream = scripted
    requests = 600  # 600 x 60 kB = 36 MB of answers
    _reader, writer = await _pipeline_without_reading(port, requests)
    served, still = -1, 0
    for _ in range(50):  # until the count holds for a second, at most 10 s
        await asyncio.sleep(0.2)
        now = upstream.count("GET", "/pub/big")
        still = still + 1 if now == served else 0
        served = now
        if still >= 5 or served == requests:
            break
    writer.close()
    # The kernel's socket buffers hold a few MB (a few dozen answers); past that the
    # gateway should stop reading requests until the client reads.
    assert served < requests // 2, f"{served} answers of {BIG} bytes buffered for a client " \
                                   "that reads nothing"


QUICK = {"keepalive_timeout": "1s", "header_timeout": "1s", "body_timeout": "1s",
         "send_timeout": "1s"}


class SlowReaderTransport:
    """The client side of one data-plane connection, for a client that reads only when
    the test says so. Behaves as asyncio's socket transport does towards its protocol:
    `pause_writing` from within the `write` that takes the unread bytes over the high-water
    mark, `resume_writing` once they are read, and after `close()` the bytes still go
    out, then `connection_lost`."""

    HIGH = 64 * 1024  # asyncio's default high-water mark

    def __init__(self) -> None:
        self.protocol: DataPlaneConnection | None = None
        self.unread = bytearray()
        self.received = bytearray()
        self.paused = False
        self.closing = False
        self.closed = asyncio.Event()  # close() called
        self.lost = False

    def write(self, data: bytes) -> None:
        if self.lost:
            return  # as asyncio's transport: dropped once the connection is gone
        self.unread += data
        if not self.paused and len(self.unread) > self.HIGH:
            self.paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()

    def read(self) -> None:
        """The client reads everything sent so far."""
        assert self.protocol is not None
        self.received += self.unread
        self.unread.clear()
        if self.paused:
            self.paused = False
            self.protocol.resume_writing()
        if self.closing and not self.unread and not self.lost:
            self.lost = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def close(self) -> None:
        self.closing = True
        self.closed.set()

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[DataPlane, ScriptedUpstream]]:
    """A real application's data plane (no listener: the test makes its connections)
    in front of the scripted upstream."""
    upstream = ScriptedUpstream()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    config = load_config(_config(tmp_path, url, {}), environ={})
    await asyncio.to_thread(init_files, config)
    app = build_app(config)
    runner = make_runner(app, config)
    await runner.setup()
    try:
        assert runner.server is not None
        yield DataPlane(app, runner.server), upstream
    finally:
        app[UPSTREAMS].close()
        await runner.cleanup()
        server.close()


async def test_nothing_pipelined_after_connection_close_reaches_the_upstream(
        plane: tuple[DataPlane, ScriptedUpstream]) -> None:
    data_plane, upstream = plane
    transport = SlowReaderTransport()
    client = data_plane.protocol()
    transport.protocol = client
    client.connection_made(transport)  # type: ignore[arg-type]
    client.data_received(b"GET /pub/full HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
                         + b"GET /pub/after-close HTTP/1.1\r\n" + HOST + b"\r\n")
    await asyncio.wait_for(transport.closed.wait(), 5)
    assert transport.paused  # the answer alone is over the high-water mark
    transport.read()
    await asyncio.sleep(0.5)
    transport.read()
    assert upstream.count("GET", "/pub/full") == 1
    assert upstream.count("GET", "/pub/after-close") == 0
    assert transport.received.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("scripted", [QUICK], indirect=True)
async def test_a_client_that_stops_reading_is_cut_off(
        scripted: tuple[int, ScriptedUpstream]) -> None:
    port, upstream = scripted
    requests = 200
    reader, writer = await _pipeline_without_reading(port, requests)
    await asyncio.sleep(5)  # five times every time-out, not a byte read
    received = 0
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(5):
            while data := await reader.read(1 << 20):
                received += len(data)
    writer.close()
    assert received < requests * BIG, (
        f"all {upstream.count('GET', '/pub/big')} answers were kept for a client that "
        "read nothing for 5 s")

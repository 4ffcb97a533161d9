"""The data plane on real sockets: pipelined requests answered in order, a connection
handed to aiohttp mid-way and back to the right answers, connection caps, the body
time-out, idle connections, and which requests the data plane serves itself."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httptools
import pytest
from aiohttp import web

from gateway.build import build_kind
from gateway.dataplane import request as request_module
from gateway.dataplane.request import parse_head
from gateway.keys import ACCESS_LOG, UPSTREAMS
from gateway.testing.support import free_port
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import handed_off, in_process_gateway, proxy_config

HOST = b"Host: api.sg.amity.co\r\n"


@pytest.fixture
async def plane_gateway(tmp_path: Path) -> AsyncIterator[tuple[int, web.Application]]:
    """A gateway (data plane on) in front of real upstreams: its port and application."""
    async with running_upstream("eu") as eu, running_upstream("sg") as sg, \
            running_upstream("us") as us:
        config = proxy_config(tmp_path, {"eu": eu, "sg": sg, "us": us}, free_port(), {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                       "body_timeout": "1s", "max_connections_per_address": 6,
                       "keepalive_timeout": "2s"},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [sg]},
                        "eu": {"hosts": ["api.eu.amity.co"], "upstreams": [eu]},
                        "us": {"hosts": ["api.us.amity.co"], "upstreams": [us]}},
        })
        async with in_process_gateway(config) as (url, app):
            yield int(url.rsplit(":", 1)[1]), app


@pytest.fixture
def plane(plane_gateway: tuple[int, web.Application]) -> int:
    """The port of `plane_gateway`."""
    return plane_gateway[0]


class Answers:
    """Responses read off one connection with httptools, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[int, dict[str, str], bytes]] = []
        self._headers: dict[str, str] = {}
        self._body = b""
        self._parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self._parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""

    def feed(self, data: bytes) -> None:
        self._parser.feed_data(data)


async def _read(reader: asyncio.StreamReader, answers: Answers, count: int,
                timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while len(answers.done) < count:
            data = await reader.read(65536)
            if not data:
                return
            answers.feed(data)


async def test_pipelined_requests_are_answered_in_order(plane: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    paths = [f"/pub/item-{i}" for i in range(8)]
    writer.write(b"".join(
        b"GET %s HTTP/1.1\r\n%sX-Request-Id: r-%d\r\n\r\n" % (p.encode(), HOST, i)
        for i, p in enumerate(paths)))
    answers = Answers()
    await _read(reader, answers, len(paths))
    writer.close()
    assert [json.loads(body)["path"] for _, _, body in answers.done] == paths
    assert [h["x-request-id"] for _, h, _ in answers.done] == [f"r-{i}" for i in range(8)]


async def test_a_connection_handed_to_aiohttp_midway_answers_everything(plane: int) -> None:
    """Proxied (data plane), built-in (handed off), then proxied again (now aiohttp's),
    all pipelined on one connection: each gets its own answer, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /pub/one HTTP/1.1\r\n" + HOST + b"\r\n"
                 + b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n"
                 + b"POST /pub/two HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
                 + b"3\r\nabc\r\n0\r\n\r\n"
                 + b"GET /pub/three HTTP/1.1\r\n" + HOST + b"\r\n")
    answers = Answers()
    await _read(reader, answers, 4)
    writer.close()
    statuses = [status for status, _, _ in answers.done]
    assert statuses == [200, 200, 200, 200]
    assert json.loads(answers.done[0][2])["path"] == "/pub/one"
    assert json.loads(answers.done[1][2])["status"] == "ok"
    assert json.loads(answers.done[2][2])["size"] == 3
    assert json.loads(answers.done[3][2])["path"] == "/pub/three"


async def test_connections_over_the_per_address_cap_are_closed(plane: int) -> None:
    held = [await asyncio.open_connection("127.0.0.1", plane) for _ in range(6)]
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /pub/x HTTP/1.1\r\n" + HOST + b"\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed before any work
    for _, held_writer in held:
        held_writer.close()
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /pub/x HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")


async def test_a_small_body_that_stops_arriving_gets_408(plane: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    started = time.monotonic()
    writer.write(b"POST /pub/x HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc")
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 408")
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {
        "status": "error", "code": 400000, "message": "request timeout"}
    assert 0.9 < time.monotonic() - started < 3


async def test_an_idle_keep_alive_connection_is_closed(plane: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /pub/x HTTP/1.1\r\n" + HOST + b"\r\n")
    answers = Answers()
    await _read(reader, answers, 1)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 1.5 < time.monotonic() - started < 4


@pytest.mark.parametrize(("raw", "served"), [
    (b"GET /pub/x HTTP/1.1\r\nHost: a\r\n\r\n", True),
    (b"POST /pub/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", True),
    (b"GET /pub/x HTTP/1.0\r\nHost: a\r\n\r\n", False),
    (b"HEAD /pub/x HTTP/1.1\r\nHost: a\r\n\r\n", False),
    (b"OPTIONS /pub/x HTTP/1.1\r\nHost: a\r\n\r\n", False),
    (b"POST /pub/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    (b"POST /pub/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", False),
    (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nHost: a\r\nX: \xc3\xa9\r\n\r\n", False),
    (b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", False),
])
def test_which_heads_the_data_plane_serves(raw: bytes, served: bool) -> None:
    assert (parse_head(raw, max_url=8190, max_field=8190) is not None) is served


def test_one_reader_parses_a_connections_heads_as_fresh_parsers_would() -> None:
    """A reader keeps its llhttp parser only between complete bodiless messages: each
    head of a mixed sequence is read exactly as a new parser reads it alone."""
    heads = [
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /b?x=1 HTTP/1.1\r\nHost: a\r\nX-Id: 2\r\n\r\n",
        b"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",  # body to come
        b"DELETE /d HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET /e HTTP/1.0\r\nHost: a\r\n\r\n",  # refused: HTTP/1.0
        b"PUT /f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /g HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",  # no reuse after
        b"GET /h HTTP/1.1\r\nHost: a\r\nX: \xc3\xa9\r\n\r\n",  # refused: not ASCII
        b"PATCH /i HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /j HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",  # refused: bare LF
        b"GET /k HTTP/1.1\r\nHost: b\r\n\r\n",
    ]
    reader = request_module.HeadReader()
    read = [reader.parse(raw, max_url=8190, max_field=8190) for raw in heads]
    alone = [parse_head(raw, max_url=8190, max_field=8190) for raw in heads]
    assert read == alone
    assert [head.target if head else None for head in read] == [
        "/a", "/b?x=1", "/c", "/d", None, "/f", "/g", None, "/i", None, "/k"]
    # And the parser is indeed kept across bodiless heads (what the reader is for).
    reader = request_module.HeadReader()
    reader.parse(heads[0], max_url=8190, max_field=8190)
    kept = reader._parser
    reader.parse(heads[1], max_url=8190, max_field=8190)
    assert kept is not None and reader._parser is kept


BARE_LINE_BREAKS = [
    b"GET /x HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n",
    b"GET /x HTTP/1.1\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.1\rHost: a\r\n\r\n",
    b"GET /x\r HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX: 1\r\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX:\n 1\r\n\r\n",
]


@pytest.mark.parametrize("raw", BARE_LINE_BREAKS)
@pytest.mark.parametrize("strict", [True, False], ids=["llhttp-only", "scanned"])
def test_a_bare_cr_or_lf_is_never_the_data_planes(raw: bytes, strict: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused by the installed llhttp itself (checked at import), and by the scan an
    llhttp that accepted them would get instead."""
    assert request_module.STRICT_LINE_BREAKS  # httptools as pinned: no scan per head
    monkeypatch.setattr(request_module, "STRICT_LINE_BREAKS", strict)
    assert parse_head(raw, max_url=8190, max_field=8190) is None


async def test_a_refusal_is_answered_on_the_data_plane_and_the_connection_stays(
        plane_gateway: tuple[int, web.Application]) -> None:
    """401 for a bad token, 401 with no token, then a public request, pipelined on one
    connection: the contract's errors, and nothing handed to aiohttp."""
    plane, app = plane_gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /api/v3/me HTTP/1.1\r\n" + HOST + b"Authorization: Bearer a.b.c\r\n"
                 b"X-Request-Id: bad-1\r\n\r\n"
                 + b"POST /api/v3/me HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n\r\n{}"
                 + b"GET /pub/after HTTP/1.1\r\n" + HOST + b"\r\n")
    answers = Answers()
    await _read(reader, answers, 3)
    writer.close()
    assert [status for status, _, _ in answers.done] == [401, 401, 200]
    (_, bad, bad_body), (_, missing, missing_body), (_, _, after) = answers.done
    assert json.loads(bad_body) == {"status": "error", "code": 400100,
                                    "message": "Invalid token"}
    assert json.loads(missing_body) == {"status": "error", "code": 400100,
                                        "message": "Unauthorized"}
    assert bad["x-request-id"] == "bad-1" and missing["x-request-id"]
    assert bad["content-type"] == "application/json" and bad["server"] == "gateway"
    assert json.loads(after)["path"] == "/pub/after"
    assert handed_off(app) == 0


async def test_a_half_closed_client_gets_its_answer_then_the_close(plane: int) -> None:
    """A client that sends its request and shuts its write side gets the answer and then
    the end of the connection, not a wait for the keep-alive time-out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /pub/half HTTP/1.1\r\n" + HOST + b"\r\n")
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 1.5)  # keepalive_timeout is 2 s
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")



@pytest.mark.skipif(build_kind() != "interpreted",
                    reason="replaces a module function, which compiled callers do not look up")
async def test_an_exchange_that_fails_inside_a_callback_closes_the_connection(
        plane_gateway: tuple[int, web.Application], monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error while writing an answer: the client sees the connection end,
    instead of waiting for an answer with no time-out armed; the exchange no longer
    counts as in flight (else writes would be held for good, write_batch.BUSY)."""
    plane, app = plane_gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", plane)
    writer.write(b"GET /pub/warm HTTP/1.1\r\n" + HOST + b"\r\n")  # a pooled connection next
    answers = Answers()
    await _read(reader, answers, 1)

    def broken(*_args: object, **_kwargs: object) -> bytes:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr("gateway.dataplane.connection.response_head", broken)
    log = app[ACCESS_LOG]
    log.stream = io.StringIO()
    writer.write(b"GET /pub/boom HTTP/1.1\r\n" + HOST + b"\r\n")
    assert await asyncio.wait_for(reader.read(), 1.5) == b""
    writer.close()
    assert app[UPSTREAMS].writes.in_flight == 0
    log.flush()
    [line] = [json.loads(line) for line in log.stream.getvalue().splitlines()
              if '"/pub/boom"' in line]
    assert line["status"] != 499  # the gateway closed it: not the client leaving

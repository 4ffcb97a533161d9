"""Size limits answered with the contract's JSON, by the connection layer and the gate."""

from __future__ import annotations

import json

from gateway.testing.support import raw_request
from tests.proxy.conftest import ProxySetup


def _port(proxy: ProxySetup) -> int:
    return int(proxy.url.rsplit(":", 1)[1])


async def test_request_line_over_the_limit_is_414(proxy: ProxySetup) -> None:
    head = b"GET /pub/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, headers, body = await raw_request(_port(proxy), head)
    assert status == 414
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "error", "code": 400000, "message": "URI too long"}


async def test_one_header_over_the_limit_is_431(proxy: ProxySetup) -> None:
    for head in (
        b"GET /pub/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
        b"GET /pub/x HTTP/1.1\r\nHost: x\r\nX-" + b"n" * 9000 + b": 1\r\n\r\n",
    ):
        status, _headers, body = await raw_request(_port(proxy), head)
        assert status == 431
        assert json.loads(body) == {
            "status": "error", "code": 400000, "message": "request headers too large"}


async def test_header_block_over_32_kib_is_431(proxy: ProxySetup) -> None:
    lines = b"".join(b"X-Part-%d: %s\r\n" % (i, b"v" * 4000) for i in range(10))
    status, _headers, body = await raw_request(
        _port(proxy), b"GET /pub/x HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert status == 431
    assert json.loads(body)["message"] == "request headers too large"


async def test_too_many_headers_is_431(proxy: ProxySetup) -> None:
    lines = b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
    status, _headers, _body = await raw_request(
        _port(proxy), b"GET /pub/x HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert status == 431


async def test_smuggling_shapes_are_400_json(proxy: ProxySetup) -> None:
    cases = [
        b"POST /pub/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /pub/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /pub/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhi\r\n0\r\n\r\n",
        b"GET /pub/x HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
    ]
    for head in cases:
        status, headers, body = await raw_request(_port(proxy), head)
        assert status == 400, head
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["code"] == 400000

"""gateway/protocol.py extends aiohttp's RequestHandler and reads some of its private
attributes (there is no public API for a head or body time-out). aiohttp is pinned to
the minor version this was written against; this test fails first if an upgrade moves
them, instead of the time-outs silently stopping to work."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

# What gateway/protocol.py reads on a RequestHandler, and on the web.Server it builds.
HANDLER_ATTRIBUTES = ("_loop", "_upgraded", "_request_count", "_messages",
                      "_request_in_progress", "_payload_parser")
SERVER_ATTRIBUTES = ("_loop", "_kwargs")


async def test_the_request_handler_internals_the_gateway_reads_exist() -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    server = web.Server(handler)
    for name in SERVER_ATTRIBUTES:
        assert hasattr(server, name), f"aiohttp.web.Server lost {name}"
    protocol = server()
    assert isinstance(protocol, RequestHandler)
    for name in HANDLER_ATTRIBUTES:
        assert hasattr(protocol, name), f"aiohttp RequestHandler lost {name}"
    assert asyncio.get_running_loop() is not None

"""The HTTP connection layer: requests aiohttp rejects before any handler runs.

aiohttp answers an unparsable request (a request line or a header over the limit,
smuggling shapes, bad chunk sizes) from its protocol handler with a plain-text body.
The contract wants JSON and specific statuses, so the runner builds a protocol
handler whose `handle_error` answers with the contract's body and no stack trace.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.errors import error_response

log = logging.getLogger("gateway.protocol")


def parser_error(status: int, exc: BaseException | None) -> tuple[int, str]:
    """The contract's (status, message) for a request the HTTP parser refused."""
    if isinstance(exc, LineTooLong):
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        # The C parser raises from cb_on_url for the request line, cb_on_header_* else.
        if frames and frames[-1].name.endswith("cb_on_url"):
            return 414, "URI too long"
        return 431, "request headers too large"
    if isinstance(exc, BadHttpMessage):
        if "Too many headers" in str(exc.message):
            return 431, "request headers too large"
        return 400, f"malformed request: {exc.message}"
    if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
        return exc.code, f"malformed request: {exc.message}"
    if 400 <= status < 500:
        return status, "malformed request"
    return 500, "internal error"


class GatewayRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the head is out: only closing is left
            return super().handle_error(request, status, exc, message)
        status, text = parser_error(status, exc)
        if status >= 500:
            log.error("error handling request from %s", request.remote, exc_info=exc)
        else:
            log.info("refused request from %s: %s", request.remote, text)
        response = error_response(status, text)
        response.force_close()
        return response


class GatewayServer(web.Server):
    def __call__(self) -> RequestHandler:
        kwargs: dict[str, Any] = self._kwargs
        return GatewayRequestHandler(self, loop=self._loop, **kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections answer parser errors with the contract's JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return GatewayServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )

"""The HTTP connection layer: requests aiohttp rejects before any handler runs.

aiohttp answers an unparsable request (a request line or a header over the limit,
smuggling shapes, bad chunk sizes) from its protocol handler with a plain-text body.
The contract wants JSON and specific statuses, so the runner builds a protocol
handler whose `handle_error` answers with the contract's body and no stack trace (and
not the parser's diagnostic, which quotes the request back).

The handler also bounds how long a request head may take to arrive (`header_timeout`):
a client that trickles its request line and headers byte by byte (slowloris), or
connects and sends nothing, is disconnected instead of holding the connection until
aiohttp's keep-alive timeout (an hour by default).

It also bounds how long a request body may stall (`body_timeout`): see `BodyTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.errors import GatewayError, error_response

log = logging.getLogger("gateway.protocol")

HEADER_TIMEOUT = 20.0
"""Seconds a request head (request line and headers) may take from its first byte, or a
new connection from being accepted, before the connection is closed."""

BODY_TIMEOUT = 30.0
"""Seconds within which a request body still on its way must deliver BODY_PROGRESS bytes
(or its end), else it has stopped arriving: 408, or a closed connection."""

BODY_PROGRESS = 1024
"""Bytes that count as progress. Not one byte: a body trickled a few bytes at a time
("slow POST") holds a connection, a handler and, proxied, an upstream connection just as
long as one that stopped. Not a bound on the whole body either: a 1 GiB upload on a slow
link is legitimate, and it keeps delivering far more than this per window."""

SERVER_HEADER = "gateway"  # what gateway.app sets on every answer the app makes
_SERVER = {"Server": SERVER_HEADER}  # answers made before the app runs set it themselves


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
        return 400, _malformed(exc.message)
    if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
        return exc.code, _malformed(exc.message)
    if 400 <= status < 500:
        return status, "malformed request"
    return 500, "internal error"


def _malformed(detail: object) -> str:
    """`malformed request: <what>`, one line: the parser's own text goes on to quote the
    offending bytes (`b'...'`) under a caret, and a client's bytes are not sent back."""
    lines = []
    for line in str(detail).splitlines():
        text = line.strip()
        if not text or text.startswith(("b'", 'b"')) or set(text) <= {"^", "~"}:
            continue
        lines.append(text.rstrip(":"))
    what = ": ".join(lines)[:200]
    return f"malformed request: {what}" if what else "malformed request"


class BodyTimeout(GatewayError):
    """What reading a request body raises once it stopped arriving (`server.body_timeout`).

    Set on the body's StreamReader (`set_exception`, public), so every reader gets it:
    built-in endpoints answer it as the contract's 408, and a body being streamed upstream
    fails its upload, which aborts the upstream request (the connection is closed, never a
    body passed off as complete)."""

    def __init__(self) -> None:
        # 400000, as for the other size and time limits (API.md section 1).
        super().__init__(408, "request timeout", code=400000, close_connection=True)


class GatewayRequestHandler(RequestHandler):
    """aiohttp's protocol handler with the contract's parser errors, a header timeout and a
    body timeout."""

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop,
                 header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self.header_timeout = header_timeout  # server.header_timeout
        self.body_timeout = body_timeout  # server.body_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._last_body: StreamReader | None = None  # body of the last request parsed
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_mark = 0.0  # loop time of the body's last progress
        self._body_bytes = 0  # bytes received since then
        self._body_held = False  # reading paused by flow control: the gateway's doing
        self.handling = False  # the app is handling a request (set by _json_http_errors)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte is timed too

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A request head starts with the first byte that is not part of a body: time it
        # from there until the parser has the whole head (a message).
        if data and self._head_timer is None and self._between_requests():
            self._arm_head_timer()
        if self._body_timer is not None:
            self._body_received(len(data))
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self._disarm_head_timer()
            self._last_body = self._messages[-1][1] if self._messages else None
            self._start_body_clock()
        elif self._body_timer is not None and self._body_done():
            self._disarm_body_timer()

    # -- body timeout -------------------------------------------------------------
    # Measured here, where bytes arrive, not around each read: it then holds on every
    # route whoever reads the body (or nobody yet), and a handler busy elsewhere (an
    # upstream slow to take the upload) is not mistaken for a client that stopped.

    def pause_reading(self) -> None:
        # The body's buffer is full because nobody reads it fast enough: time stops.
        self._body_held = True
        super().pause_reading()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._body_held:
            self._body_held = False
            self._mark_progress()  # a full window from the moment the client may send
        super().resume_reading(resume_parser)

    def _body_done(self) -> bool:
        body = self._last_body
        return body is None or body.is_eof() or body.exception() is not None

    def _start_body_clock(self) -> None:
        self._disarm_body_timer()
        if self.body_timeout > 0 and not self._upgraded and not self._body_done():
            self._mark_progress()
            self._body_timer = self._loop.call_at(
                self._body_mark + self.body_timeout, self._check_body
            )

    def _mark_progress(self) -> None:
        self._body_mark = self._loop.time()
        self._body_bytes = 0

    def _body_received(self, size: int) -> None:
        # Counted per delivery, not per check: moving the deadline costs no timer.
        self._body_bytes += size
        if self._body_bytes >= BODY_PROGRESS:
            self._mark_progress()

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _check_body(self) -> None:
        self._body_timer = None
        body = self._last_body
        if body is None or self._body_done() or self.transport is None:
            return
        if self._body_held or not _reading(self.transport):
            self._mark_progress()  # paused by the gateway (flow control, a pipeline queue)
        deadline = self._body_mark + self.body_timeout
        if self._loop.time() < deadline:
            self._body_timer = self._loop.call_at(deadline, self._check_body)
            return
        self._cut_body(body)

    def _cut_body(self, body: StreamReader) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if not self.handling:
            # Nobody will read it: the answer went out already (aiohttp is dropping the
            # rest of the body) or was never started (a request queued behind another).
            log.info("closing the connection from %s: request body stalled for %gs "
                     "after the answer", peer, self.body_timeout)
            self.force_close()
            return
        log.info("request body from %s stalled for %gs: request timeout", peer,
                 self.body_timeout)
        # No more bytes are parsed, and the connection closes after this answer: what is
        # left of the body is unknown. The reader of the body gets BodyTimeout.
        self.close()
        body.set_exception(BodyTimeout())

    def _between_requests(self) -> bool:
        if self._upgraded or self._payload_parser is not None:
            return False  # a WebSocket, or a body read by a payload parser
        return self._last_body is None or self._last_body.is_eof()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        if self.header_timeout > 0:
            self._head_timer = self._loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._request_in_progress:
            # Pipelined: the head started while an earlier request is being answered.
            self._arm_head_timer()
            return
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.info("closing the connection from %s: no complete request head within %gs",
                 peer, self.header_timeout)
        self.force_close()

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
        response = error_response(status, text, headers=_SERVER)
        response.force_close()
        return response


def _reading(transport: asyncio.BaseTransport) -> bool:
    """Whether the transport is reading (`is_reading`: asyncio and uvloop transports)."""
    is_reading = getattr(transport, "is_reading", None)
    return bool(is_reading()) if is_reading is not None else True


class GatewayServer(web.Server):
    def __call__(self) -> RequestHandler:
        kwargs: dict[str, Any] = self._kwargs
        return GatewayRequestHandler(self, loop=self._loop, **kwargs)


RequestHandlerFn = Callable[[BaseRequest], Awaitable[web.StreamResponse]]


def _json_http_errors(handler: RequestHandlerFn) -> RequestHandlerFn:
    """The app's handler, with aiohttp's own HTTP errors raised before the middlewares run
    turned into the contract's JSON.

    Answered here, before anything reads the request:
    - a header value that is not UTF-8 (400): aiohttp hands such bytes on as lone
      surrogates, which no store, hash or upstream request can encode;
    - an `Expect` other than `100-continue` (417): aiohttp's router would answer in plain
      text quoting the header.

    It also tells the connection when the app is handling a request (the body timeout
    acts differently then), and answers 408 for a body that stopped arriving whatever the
    app made of it: an upload streamed upstream fails as a broken upstream request.
    """

    async def handle(request: BaseRequest) -> web.StreamResponse:
        protocol = request.protocol
        if not isinstance(protocol, GatewayRequestHandler):
            return await answer(request)
        protocol.handling = True
        try:
            response = await answer(request)
        finally:
            protocol.handling = False
        return _after_body_timeout(request, response)

    async def answer(request: BaseRequest) -> web.StreamResponse:
        undecodable = _not_utf8_header(request)
        if undecodable is not None:
            log.info("refused request from %s: header %s is not UTF-8", request.remote,
                     undecodable)
            return error_response(400, f"header {undecodable}: not valid UTF-8",
                                  headers=_SERVER)
        expect = request.headers.get(hdrs.EXPECT)
        if expect is not None and request.version == HttpVersion11 and (
            expect.lower() != "100-continue"
        ):
            response = error_response(417, "Expectation Failed", headers=_SERVER)
            response.force_close()  # the body, if any, was not asked for: do not read it
            return response
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, exc.reason, headers=_SERVER)

    return handle


def _after_body_timeout(request: BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """The answer to a request whose body timed out while the app handled it: the
    contract's 408 if nothing was sent yet; the connection closes either way."""
    body = request.content
    if not isinstance(body.exception(), BodyTimeout):
        return response
    # Nothing more is parsed from this connection (see _cut_body): marking the body
    # complete stops aiohttp from reading on to drop the rest, which would only meet the
    # timeout again.
    body.feed_eof()
    if response.prepared or response.status == 408:  # sent already, or the app's own 408
        return response
    timeout = BodyTimeout().response()
    request_id = response.headers.get("X-Request-Id")
    if request_id is not None:
        timeout.headers["X-Request-Id"] = request_id
    timeout.headers.update(_SERVER)
    return timeout


def _not_utf8_header(request: BaseRequest) -> str | None:
    """The name of the first header whose value is not UTF-8, if any (names are tokens).

    On the raw bytes, which the parser keeps anyway: about a microsecond per request."""
    for name, value in request.raw_headers:
        if not value.isascii():
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return name.decode("ascii", "replace")[:100]
    return None


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections answer parser errors with the contract's JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return GatewayServer(
            _json_http_errors(server.request_handler),
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )

"""One client connection on the data plane: an asyncio Protocol that parses request
heads with httptools, forwards admitted requests over the upstream pool and writes the
answers, in order (pipelined requests wait their turn).

At a request boundary the connection can be handed, with every byte not yet consumed,
to aiohttp's protocol (`transport.set_protocol`): from then on the aiohttp application
serves it, as it serves every connection without a data plane. A head is parsed here
only to decide that; nothing of a handed-off request has been answered or consumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, ParamSpec, cast

from multidict import CIMultiDict

from gateway.accesslog import access_line
from gateway.dataplane.admission import Admitted, Refusal, admit
from gateway.dataplane.request import MAX_HEAD, Head, HeadReader, head_end
from gateway.errors import GatewayError, error_body
from gateway.proxy.deadline import Deadline
from gateway.proxy.forward import IDEMPOTENT, Relayable, failed_over, send_upstream
from gateway.proxy.headers import (
    forwarded_request_headers,
    forwarded_response_fields,
    request_id_for,
)
from gateway.proxy.outbound import OutboundRequest
from gateway.proxy.upstream_client import (
    RawFields,
    UpstreamBroken,
    UpstreamConnection,
    UpstreamTimeout,
)
from gateway.proxy.upstreams import RegionPool, Upstream
from gateway.proxy.write_batch import Outbox, WriteBatch
from gateway.runtime import Settings
from gateway.tls.client_cert import header_fingerprint
from gateway.tracing.request import RequestTrace

if TYPE_CHECKING:
    from gateway.dataplane.plane import DataPlane

log = logging.getLogger("gateway.dataplane")

SMALL_BODY = 64 * 1024  # request bodies up to this are read here; larger ones handed off
MAX_BUFFERED = 256 * 1024  # pipelined bytes held while a request is in flight
SERVER = b"gateway"
CLIENT_CLOSED = 499  # the status an exchange is recorded with when its client left first
# Why a connection is handed to aiohttp (gateway_dataplane_handoffs_total{reason}): a head
# it does not parse itself, a body larger than SMALL_BODY, a route or credential only the
# aiohttp path serves (built-in endpoints, CORS, console sessions, ...).
HANDOFF_REASONS = ("head", "body", "route")
_PAUSED_MESSAGE = "client connection lost"


class _DateCache:
    second: ClassVar[int] = -1
    text: ClassVar[str] = ""


def http_date() -> str:
    now = int(time.time())
    if now != _DateCache.second:
        _DateCache.second, _DateCache.text = now, formatdate(now, usegmt=True)
    return _DateCache.text


P = ParamSpec("P")


def _closing_on_error(
    callback: Callable[Concatenate[DataPlaneConnection, UpstreamConnection, P], None],
) -> Callable[Concatenate[DataPlaneConnection, UpstreamConnection, P], None]:
    """An exchange callback that fails closes both connections: it runs inside the
    upstream connection's read, where an error would otherwise leave the client waiting
    for an answer with no time-out armed (a task's failure is handled in `_task_done`)."""

    def guarded(self: DataPlaneConnection, connection: UpstreamConnection, /,
                *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(self, connection, *args, **kwargs)
        except Exception:
            log.exception("data plane exchange failed")
            connection.abort()
            self._close()

    return guarded


class Exchange:
    """One request forwarded: what the access line, the metrics and the answer need."""

    __slots__ = ("admitted", "answered", "body", "candidates", "connection", "head",
                 "idempotent", "keep_alive", "outbound", "pool", "recorded", "request_id",
                 "settings", "started", "status", "trace", "upstream")

    def __init__(self, head: Head, admitted: Admitted, request_id: str, trace: RequestTrace,
                 pool: RegionPool, outbound: OutboundRequest, settings: Settings) -> None:
        self.settings = settings  # the snapshot the request was admitted under
        self.body = outbound.body_bytes
        self.head = head
        self.admitted = admitted
        self.request_id = request_id
        self.trace = trace
        self.pool = pool
        self.outbound = outbound
        self.started = time.perf_counter()
        self.keep_alive = head.keep_alive
        self.status = 502  # until an answer is known (kept if the gateway closes first)
        self.answered = False  # its head built to be written: the client has an answer
        self.upstream: Upstream | None = None  # the one tried last
        self.candidates: Sequence[Upstream] = ()
        self.connection: UpstreamConnection | None = None  # while on callbacks
        self.recorded = False
        self.idempotent = head.method in IDEMPOTENT  # may be sent twice

    def at(self, upstream: Upstream) -> None:
        self.upstream = upstream


class DataPlaneConnection(asyncio.Protocol):
    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._heads = HeadReader()
        self._batch: WriteBatch = plane.writes()
        self._outbox: Outbox | None = None  # from connection_made
        self._busy = False  # a request is being forwarded
        self._exchange: Exchange | None = None
        self._reading_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._deadline = Deadline(asyncio.get_running_loop())
        self._send_deadline = Deadline(asyncio.get_running_loop())  # while writes pause
        self._task: asyncio.Task[None] | None = None
        self._gone = False
        self._closed_here = False  # the gateway closed or cut it, not the client
        self._eof = False  # the client half-closed: answer what it sent, then close
        self.peer: str | None = None
        self._client_cert: str | None = None  # from this connection's TLS handshake
        self._request_cert: str | None = None  # the current request's (handshake or header)
        self._scheme = "http"

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._outbox = Outbox(self._batch, transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._scheme = "https"
            der = ssl_object.getpeercert(binary_form=True)
            self._client_cert = hashlib.sha256(der).hexdigest() if der else None
        if not self._plane.admit_connection(self):
            transport.abort()  # over the connection caps: refused before any work
            return
        self._deadline.arm(self._plane.settings().config.server.header_timeout, self._close,
                           kind="head")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy or self._write_paused:
            if len(self._buffer) > MAX_BUFFERED and not self._reading_paused:
                self._pause_reading()
            return
        self._next()

    def eof_received(self) -> bool | None:
        self._eof = True
        if not self._busy and not self._buffer:
            self._close()
        return True  # keep the write side open for an answer in flight

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        self._set_busy(False)
        if self._outbox is not None:
            self._outbox.drop()
        self._deadline.cancel()
        self._send_deadline.cancel()
        exchange, self._exchange = self._exchange, None
        if exchange is not None:  # the connection ended before the exchange did
            if not exchange.answered and not self._closed_here:
                # The client left first: nginx's 499 "client closed request", not a 5xx
                # that would blame the upstream.
                exchange.status = CLIENT_CLOSED
            if exchange.connection is not None:
                exchange.connection.finish()  # closes it: the answer is not wanted
            self._record(exchange, 0)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_writer()
        self._plane.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        # A client that reads nothing must not hold the connection (and what it waits
        # for) forever: cut, not closed (a close would wait for the unsent bytes).
        self._send_deadline.arm(self._plane.settings().config.server.send_timeout,
                                self.abort, kind="send")

    def resume_writing(self) -> None:
        self._write_paused = False
        self._send_deadline.disarm()
        self._wake_writer()
        if not self._busy and self._exchange is None:
            self._resume()
            self._next()  # the requests that waited for the client to read

    # -- requests -----------------------------------------------------------------------

    def _next(self) -> None:
        """Serve the next buffered request, or wait for more bytes. Refusals are answered
        in this loop (not by recursion: a pipeline of them cannot grow the stack)."""
        while self._serve_one():
            pass

    def _serve_one(self) -> bool:
        """Start the next buffered request; True when it was answered at once (a refusal)
        and the one after it may start."""
        if self._gone or self._transport is None or self._write_paused \
                or self._transport.is_closing():
            # Not while the client is not reading its answers; never after a close
            # (RFC 9112 9.6: nothing after `Connection: close` is processed).
            return False
        settings = self._plane.settings()
        server = settings.config.server
        if not self._buffer:
            if self._eof:  # the client sent all it will: nothing left to wait for
                self._close()
            else:
                self._deadline.arm(server.keepalive_timeout, self._close, kind="idle")
            return False
        end = head_end(self._buffer)
        if end < 0:
            # Too long, or a bare LF (a head llhttp might end where CRLF CRLF is not):
            # aiohttp answers it.
            if len(self._buffer) >= MAX_HEAD or \
                    self._buffer.count(b"\n") != self._buffer.count(b"\r\n"):
                self.hand_off("head")
            elif self._deadline.kind != "head":  # from the head's first byte (slowloris)
                self._deadline.arm(server.header_timeout, self._close, kind="head")
            return False
        started = time.perf_counter()
        head = self._heads.parse(bytes(self._buffer[:end]), max_url=server.max_url_bytes,
                                 max_field=server.max_header_bytes)
        if head is None or head.content_length > SMALL_BODY:
            self.hand_off("head" if head is None else "body")
            return False
        admitted = self._admit(head, settings)
        if admitted is None:
            self.hand_off("route")
            return False
        total = end + head.content_length
        if len(self._buffer) < total:
            if self._deadline.kind != "body":
                self._deadline.arm(server.body_timeout, self._body_timed_out, kind="body")
            return False
        body = bytes(self._buffer[end:total]) if head.content_length else None
        del self._buffer[:total]
        self._deadline.disarm()
        if isinstance(admitted, Refusal):
            if self._refuse(head, admitted, settings, started):
                return True
            self._close()
            return False
        self._set_busy(True)
        self._begin(self._exchange_for(head, admitted, body, settings))
        return False

    def _refuse(self, head: Head, refusal: Refusal, settings: Settings, started: float
                ) -> bool:
        """Answer a refused request as the aiohttp path does (the contract's error, the
        reason counted and logged); whether the connection stays open."""
        plane = self._plane
        refused, route = refusal.refused, refusal.rule.name
        request_id = request_id_for(head.headers.get("X-Request-Id"))
        trace = plane.tracing().begin(head.headers)
        plane.metrics().observe_refusal(route, refused.reason.value)
        body = error_body(refused.status, refused.message, code=refused.code)
        self._write(response_head(
            refused.status, HTTPStatus(refused.status).phrase, [CONTENT_TYPE_JSON],
            request_id=request_id, warning=refused.warning, keep_alive=head.keep_alive,
            length=len(body)) + body)
        elapsed = time.perf_counter() - started
        plane.metrics().observe_request(route, head.method, refused.status, elapsed)
        if plane.access_log().enabled:
            plane.access_log().write(access_line(
                request_id=request_id, trace_id=trace.trace_id, method=head.method,
                path=refusal.path, status=refused.status, route=route, region=None,
                upstream=None, elapsed=elapsed, bytes_in=head.content_length,
                bytes_out=len(body), remote=self._remote(head, settings), principal=None,
                refusal=refused.reason.value))
        if trace.span is not None:
            plane.tracing().finish(trace, route=route, method=head.method,
                                   status=refused.status, region=None, upstream=None,
                                   principal=None)
        return head.keep_alive

    def _remote(self, head: Head, settings: Settings) -> str | None:
        """The client's address for logs: through trusted proxies, the one they name."""
        return settings.trusted_proxies.client_of(
            self.peer, head.headers.getall("X-Forwarded-For", []))

    def _admit(self, head: Head, settings: Settings) -> Admitted | Refusal | None:
        plane = self._plane
        cert = self._client_cert
        header = settings.client_cert_header
        if cert is None and header is not None and header in head.headers \
                and settings.trusted_proxies.trusts(self.peer):
            cert = header_fingerprint(head.headers[header])
        self._request_cert = cert
        return admit(head, settings, plane.tokens(), plane.auth_state(), client_cert=cert,
                     stale=plane.stale(), routes=plane.routes)

    def _exchange_for(self, head: Head, admitted: Admitted, body: bytes | None,
                      settings: Settings) -> Exchange:
        plane = self._plane
        request_id = request_id_for(head.headers.get("X-Request-Id"))
        trace = plane.tracing().begin(head.headers)
        headers = self._upstream_headers(head, admitted, request_id, trace, settings)
        target = admitted.path + (f"?{admitted.query}" if admitted.query else "")
        return Exchange(head, admitted, request_id, trace, admitted.pool,
                        OutboundRequest(head.method, target, headers, body), settings)

    def _begin(self, exchange: Exchange) -> None:
        """Forward a request. The common case, a kept-alive upstream connection ready,
        runs on callbacks (see `upstream_*` below); the rest is awaited in a task."""
        self._exchange = exchange
        candidates = exchange.pool.candidates()
        exchange.candidates = candidates
        first = candidates[0]
        try:
            head = exchange.outbound.head_for(first)
        except ValueError:
            head = None  # the task answers it (400)
        connection = self._plane.upstreams().idle(
            first.origin, idempotent=exchange.idempotent) if head else None
        if connection is None or head is None:
            self._spawn(self._forward(exchange, candidates))
            return
        exchange.at(first)
        exchange.connection = connection
        connection.exchange(head, exchange.body, exchange.pool.timeouts.read, self)

    # -- callback-driven exchanges (ExchangeListener) ----------------------------------

    @_closing_on_error
    def upstream_head(self, connection: UpstreamConnection) -> None:
        length = connection.content_length
        if _bodiless(connection.status) or (length is not None and length <= SMALL_BODY):
            return  # held until complete, then written in one go
        exchange = self._current(connection)
        exchange.connection = None
        self._observe_upstream(exchange)
        self._spawn(self._stream(exchange, connection.detach()))

    @_closing_on_error
    def upstream_complete(self, connection: UpstreamConnection) -> None:
        exchange = self._current(connection)
        exchange.connection = None
        self._observe_upstream(exchange)
        status = exchange.status = connection.status
        body = connection.take_body()
        keep_alive = exchange.keep_alive
        length = None if _bodiless(status) else len(body)  # no framing on 204, 304
        self._write(_head(exchange, status, connection.reason, connection.raw_headers,
                          length) + body)
        connection.finish()
        self._finish(exchange, len(body), keep_alive)

    @_closing_on_error
    def upstream_failed(self, connection: UpstreamConnection, error: BaseException) -> None:
        exchange = self._current(connection)
        exchange.connection = None
        connection.finish()  # closes it: the exchange did not complete
        candidates = exchange.candidates
        if isinstance(error, UpstreamBroken) and error.reused and exchange.idempotent:
            # A kept-alive connection the upstream had closed: nothing was received, so
            # the request goes again, as the awaited path retries it.
            self._spawn(self._forward(exchange, candidates))
            return
        assert isinstance(error, Exception) and exchange.upstream is not None
        try:
            failed_over(error, exchange.outbound, pool=exchange.pool,
                        upstream=exchange.upstream, metrics=self._plane.metrics())
        except GatewayError as exc:
            self._answer_error(exchange, exc)
            return
        self._spawn(self._forward(exchange, candidates[1:]))

    def _current(self, connection: UpstreamConnection) -> Exchange:
        exchange = self._exchange
        assert exchange is not None and exchange.connection is connection
        return exchange

    def _observe_upstream(self, exchange: Exchange) -> None:
        assert exchange.upstream is not None
        self._plane.metrics().observe_upstream(
            exchange.pool.name, exchange.upstream.label, "ok",
            time.perf_counter() - exchange.started)

    # -- awaited exchanges --------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine,
                                                      name="gateway-dataplane-request")
        self._task = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task is self._task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("data plane request failed", exc_info=task.exception())
            self._close()

    async def _forward(self, exchange: Exchange, candidates: Sequence[Upstream]) -> None:
        plane = self._plane
        try:
            response = await send_upstream(
                exchange.outbound, pool=exchange.pool, upstreams=plane.upstreams(),
                client=plane.client(), metrics=plane.metrics(), at=exchange.at,
                candidates=candidates)
        except GatewayError as exc:
            self._answer_error(exchange, exc)
            return
        await self._stream(exchange, response)

    async def _stream(self, exchange: Exchange, response: Relayable) -> None:
        exchange.status = response.status
        try:
            sent, keep_alive = await self._relay(exchange, response)
        finally:
            response.release()
        self._finish(exchange, sent, keep_alive)

    def _finish(self, exchange: Exchange, sent: int, keep_alive: bool) -> None:
        """The exchange is over: record it, then serve the next request (or close)."""
        self._record(exchange, sent)
        self._exchange = None
        self._set_busy(False)
        if not keep_alive:
            self._close()
            return
        self._resume()
        self._next()

    def _set_busy(self, busy: bool) -> None:
        """Whether a request is being forwarded (counted in the batch's load)."""
        if busy != self._busy:
            self._busy = busy
            self._batch.in_flight += 1 if busy else -1

    def _resume(self) -> None:
        if self._reading_paused and self._transport is not None \
                and len(self._buffer) <= MAX_BUFFERED:
            self._reading_paused = False
            self._transport.resume_reading()

    def _record(self, exchange: Exchange, sent: int) -> None:
        """Metrics, access line and span, once per exchange (also for one cut short)."""
        if exchange.recorded:
            return
        exchange.recorded = True
        plane = self._plane
        head, admitted, status = exchange.head, exchange.admitted, exchange.status
        elapsed = time.perf_counter() - exchange.started
        route = admitted.rule.name
        plane.metrics().observe_request(route, head.method, status, elapsed)
        upstream = exchange.upstream.label if exchange.upstream else None
        if plane.access_log().enabled:
            principal = admitted.principal
            body = exchange.body
            plane.access_log().write(access_line(
                request_id=exchange.request_id, trace_id=exchange.trace.trace_id,
                method=head.method, path=admitted.path, status=status, route=route,
                region=exchange.pool.name, upstream=upstream, elapsed=elapsed,
                bytes_in=len(body) if body else 0, bytes_out=sent,
                remote=self._remote(head, exchange.settings),
                principal=(f"{principal.kind}:{principal.network_id}:{principal.user_id}"
                           if principal else None),
                refusal=None))
        if exchange.trace.span is not None:
            plane.tracing().finish(
                exchange.trace, route=route, method=head.method, status=status,
                region=exchange.pool.name, upstream=upstream, principal=admitted.principal)

    def _upstream_headers(self, head: Head, admitted: Admitted, request_id: str,
                          trace: RequestTrace, settings: Settings) -> CIMultiDict[str]:
        plane = self._plane
        principal = admitted.principal
        token = admitted.token
        headers = forwarded_request_headers(
            head.headers, peer=self.peer, scheme=self._scheme, host=admitted.host,
            trusted=settings.trusted_proxies, request_id=request_id,
            drop_authorization=principal is not None or (
                token is not None and plane.tokens().issued_here(token)),
            client_cert_header=settings.client_cert_header, trace=trace,
        )
        if self._request_cert is not None:
            headers["X-Gateway-Client-Cert-Sha256"] = self._request_cert
        if principal is not None:  # the filter dropped every client X-Gateway-*
            headers.extend(principal.identity_headers())
            headers.add("X-Gateway-Push-Events", plane.push_value(principal.network_id))
        return headers

    # -- answers ------------------------------------------------------------------------

    def _answer_error(self, exchange: Exchange, exc: GatewayError) -> None:
        exchange.status = exc.status
        exchange.keep_alive = exchange.keep_alive and not exc.close_connection
        body = error_body(exc.status, exc.message, code=exc.code, detail=exc.detail)
        fields = [(name.encode("latin-1"), value.encode("latin-1"))
                  for name, value in exc.headers.items()]
        fields.append(CONTENT_TYPE_JSON)
        self._write(_head(exchange, exc.status, HTTPStatus(exc.status).phrase, fields,
                          len(body)) + body)
        self._finish(exchange, len(body), exchange.keep_alive)

    async def _relay(self, exchange: Exchange, upstream: Relayable) -> tuple[int, bool]:
        """Write the upstream's answer; (body bytes sent, whether to keep the connection)."""
        length = upstream.content_length
        keep_alive = exchange.keep_alive
        if _bodiless(upstream.status):
            self._write(_head(exchange, upstream.status, upstream.reason,
                                            upstream.raw_headers, None))
            return 0, keep_alive
        if length is not None and length <= SMALL_BODY:
            body = await upstream.read()
            self._write(_head(exchange, upstream.status, upstream.reason,
                                            upstream.raw_headers, len(body)) + body)
            return len(body), keep_alive
        chunked = length is None
        self._write(_head(exchange, upstream.status, upstream.reason,
                                        upstream.raw_headers, length))
        sent = 0
        try:
            async for chunk in upstream.iter_chunks():
                if not chunk:
                    continue
                sent += len(chunk)
                self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await self._drain()
        except (OSError, TimeoutError, UpstreamBroken, UpstreamTimeout) as exc:
            # The head is out: cut the connection so the client sees a truncated answer,
            # never a complete-looking one.
            log.warning("upstream failed mid-body: %r", exc)
            self._close()
            return sent, False
        if chunked:
            self._write(b"0\r\n\r\n")
        return sent, keep_alive

    def _write(self, data: bytes) -> None:
        if self._outbox is not None and not self._gone:
            self._outbox.write(data)

    async def _drain(self) -> None:
        if self._gone:
            raise ConnectionResetError(_PAUSED_MESSAGE)
        assert self._outbox is not None
        self._outbox.flush()  # the transport's buffer decides whether to wait
        if not self._write_paused:
            return
        self._write_waiter = asyncio.get_running_loop().create_future()
        await self._write_waiter

    def _wake_writer(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            if self._gone:
                waiter.set_exception(ConnectionResetError(_PAUSED_MESSAGE))
            else:
                waiter.set_result(None)

    # -- hand-off, timers, closing --------------------------------------------------------

    def hand_off(self, reason: str) -> None:
        """Give the connection, with every byte not yet consumed, to aiohttp's protocol;
        `reason` (head, body, route: what the data plane does not serve) is counted."""
        transport = self._transport
        if transport is None or self._gone:
            return
        self._plane.metrics().observe_handoff(reason)
        self._deadline.cancel()
        self._send_deadline.cancel()
        if self._outbox is not None:
            self._outbox.flush()  # answers to earlier requests go before aiohttp's
        self._gone = True  # this object is done with the connection
        self._plane.forget(self)
        protocol = self._plane.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        data, self._buffer = bytes(self._buffer), bytearray()
        if data:
            protocol.data_received(data)

    def _body_timed_out(self) -> None:
        """A small body that stopped arriving: 408 and close (API.md section 4a)."""
        if self._busy or self._gone:
            return
        exc = GatewayError(408, "request timeout")
        body = error_body(exc.status, exc.message, code=exc.code)
        self._write(response_head(408, "Request Timeout", [CONTENT_TYPE_JSON],
                                  request_id=request_id_for(None), warning=None,
                                  keep_alive=False, length=len(body)) + body)
        self._close()

    def _pause_reading(self) -> None:
        if self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _close(self) -> None:
        self._closed_here = True
        self._deadline.disarm()
        self._set_busy(False)  # no answer of this connection's is awaited any more
        if self._transport is not None and not self._transport.is_closing():
            assert self._outbox is not None
            self._outbox.flush()  # a close sends what the transport holds, not the outbox
            self._transport.close()

    def close_when_idle(self) -> bool:
        """Close now if no request is in flight (shutdown); True if it was idle."""
        if self._busy:
            return False
        self._close()
        return True

    def abort(self) -> None:
        self._closed_here = True
        if self._transport is not None:
            if self._outbox is not None:
                self._outbox.drop()
            self._transport.abort()


def _bodiless(status: int) -> bool:
    return status in (204, 304) or 100 <= status < 200


def _head(exchange: Exchange, status: int, reason: str, fields: RawFields,
          length: int | None) -> bytes:
    """The answer's head; every answer to a forwarded request starts here."""
    head = response_head(status, reason, fields, request_id=exchange.request_id,
                         warning=exchange.admitted.warning, keep_alive=exchange.keep_alive,
                         length=length)
    exchange.answered = True
    return head


def response_head(status: int, reason: str, fields: RawFields, *, request_id: str,
                  warning: str | None, keep_alive: bool, length: int | None) -> bytes:
    """The head for the client: the upstream's fields through the response filter, then
    the gateway's own (framing, Server, Date, X-Request-Id, Warning); `length` None
    means a chunked body."""
    # Concatenation, not bytes % formatting: compiled, it is the cheaper of the two.
    parts = [b"HTTP/1.1 " + str(status).encode() + b" "
             + reason.encode("latin-1", "replace") + b"\r\n"]
    server = date = False
    for name, value in forwarded_response_fields(fields):
        key = name.lower()
        if key == b"server":
            if value.startswith(b"Python/"):
                continue  # as the aiohttp path: never advertise a framework
            server = True
        elif key == b"date":
            date = True
        elif key == b"x-request-id" or (warning and key == b"warning"):
            continue
        parts += name, b": ", value, b"\r\n"
    if not server:
        parts.append(b"Server: " + SERVER + b"\r\n")
    if not date:
        parts += b"Date: ", http_date().encode(), b"\r\n"
    parts += b"X-Request-Id: ", request_id.encode(), b"\r\n"
    if warning:
        parts += b"Warning: ", warning.encode("latin-1", "replace"), b"\r\n"
    if length is not None:
        parts.append(b"Content-Length: " + str(length).encode() + b"\r\n")
    elif not _bodiless(status):
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


CONTENT_TYPE_JSON = (b"Content-Type", b"application/json")

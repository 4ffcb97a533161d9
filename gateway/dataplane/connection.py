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
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, cast

from multidict import CIMultiDict

from gateway.accesslog import access_line
from gateway.dataplane.admission import Admitted, admit
from gateway.dataplane.request import MAX_HEAD, Head, head_end, parse_head
from gateway.errors import GatewayError, error_body
from gateway.proxy.forward import Relayable, send_upstream
from gateway.proxy.headers import (
    forwarded_request_headers,
    forwarded_response_headers,
    request_id_for,
)
from gateway.proxy.upstream_client import UpstreamBroken, UpstreamTimeout
from gateway.proxy.upstreams import Upstream
from gateway.tls.client_cert import header_fingerprint
from gateway.tracing.request import RequestTrace

if TYPE_CHECKING:
    from gateway.dataplane.plane import DataPlane

log = logging.getLogger("gateway.dataplane")

SMALL_BODY = 64 * 1024  # request bodies up to this are read here; larger ones handed off
MAX_BUFFERED = 256 * 1024  # pipelined bytes held while a request is in flight
SERVER = "gateway"
_PAUSED_MESSAGE = "client connection lost"


class _DateCache:
    second = -1
    text = ""


def http_date() -> str:
    now = int(time.time())
    if now != _DateCache.second:
        _DateCache.second, _DateCache.text = now, formatdate(now, usegmt=True)
    return _DateCache.text


class DataPlaneConnection(asyncio.Protocol):
    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False  # a request is being forwarded
        self._reading_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._gone = False
        self.peer: str | None = None
        self._client_cert: str | None = None  # from this connection's TLS handshake
        self._request_cert: str | None = None  # the current request's (handshake or header)
        self._scheme = "http"
        self._timer_kind = ""

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
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
        self._arm(self._plane.settings().config.server.header_timeout, self._timed_out,
                  kind="head")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy:
            if len(self._buffer) > MAX_BUFFERED and not self._reading_paused:
                self._pause_reading()
            return
        self._next()

    def eof_received(self) -> bool | None:
        if not self._busy and not self._buffer:
            self._close()
        return True  # keep the write side open for an answer in flight

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        self._disarm()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_writer()
        self._plane.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # -- requests -----------------------------------------------------------------------

    def _next(self) -> None:
        """Serve the next buffered request, or wait for more bytes."""
        if self._gone or self._transport is None:
            return
        settings = self._plane.settings()
        server = settings.config.server
        if not self._buffer:
            self._arm(server.keepalive_timeout, self._close, kind="idle")
            return
        end = head_end(self._buffer)
        if end < 0:
            # Too long, or a bare LF (a head llhttp might end where CRLF CRLF is not):
            # aiohttp answers it.
            if len(self._buffer) >= MAX_HEAD or \
                    self._buffer.count(b"\n") != self._buffer.count(b"\r\n"):
                self.hand_off()
            elif self._timer_kind != "head":  # from the head's first byte (slowloris)
                self._arm(server.header_timeout, self._timed_out, kind="head")
            return
        head = parse_head(bytes(self._buffer[:end]), max_url=server.max_url_bytes,
                          max_field=server.max_header_bytes)
        if head is None or head.content_length > SMALL_BODY:
            self.hand_off()
            return
        admitted = self._admit(head)
        if admitted is None:
            self.hand_off()
            return
        total = end + head.content_length
        if len(self._buffer) < total:
            if self._timer_kind != "body":
                self._arm(server.body_timeout, self._body_timed_out, kind="body")
            return
        body = bytes(self._buffer[end:total]) if head.content_length else None
        del self._buffer[:total]
        self._disarm()
        self._busy = True
        self._task = asyncio.get_running_loop().create_task(
            self._serve(head, admitted, body), name="gateway-dataplane-request")
        self._task.add_done_callback(self._served)

    def _admit(self, head: Head) -> Admitted | None:
        plane = self._plane
        settings = plane.settings()
        cert = self._client_cert
        header = settings.client_cert_header
        if cert is None and header is not None and header in head.headers \
                and settings.trusted_proxies.trusts(self.peer):
            cert = header_fingerprint(head.headers[header])
        self._request_cert = cert
        return admit(head, settings, plane.tokens(), plane.auth_state(), client_cert=cert,
                     stale=plane.stale())

    def _served(self, task: asyncio.Task[None]) -> None:
        self._busy = False
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("data plane request failed", exc_info=task.exception())
            self._close()
            return
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        self._next()

    async def _serve(self, head: Head, admitted: Admitted, body: bytes | None) -> None:
        plane = self._plane
        settings = plane.settings()
        started = time.perf_counter()
        request_id = request_id_for(head.headers.get("X-Request-Id"))
        trace = plane.tracing().begin(head.headers)
        region = settings.config.regions.for_host(admitted.host)
        pool = settings.pools[region.name]
        chosen: list[str] = []

        def at(upstream: Upstream) -> None:
            chosen.append(upstream.label)

        headers = self._upstream_headers(head, admitted, request_id, trace)
        target = admitted.path + (f"?{admitted.query}" if admitted.query else "")
        status, sent = 502, 0
        keep_alive = head.keep_alive
        try:
            try:
                response = await send_upstream(
                    head.method, target, headers, body, pool=pool,
                    upstreams=plane.upstreams(), client=plane.client(),
                    metrics=plane.metrics(), at=at)
            except GatewayError as exc:
                status = exc.status
                keep_alive = keep_alive and not exc.close_connection
                sent = self._write_error(exc, request_id, admitted.warning, keep_alive)
            else:
                status = response.status
                try:
                    sent, keep_alive = await self._relay(response, request_id,
                                                         admitted.warning, keep_alive)
                finally:
                    response.release()
        finally:
            elapsed = time.perf_counter() - started
            plane.metrics().observe_request(admitted.rule.name, head.method, status, elapsed)
            if plane.access_log().enabled:
                principal = admitted.principal
                plane.access_log().write(access_line(
                    request_id=request_id, trace_id=trace.trace_id, method=head.method,
                    path=admitted.path,
                    status=status, route=admitted.rule.name, region=region.name,
                    upstream=chosen[-1] if chosen else None, elapsed=elapsed,
                    bytes_in=len(body) if body else 0, bytes_out=sent,
                    remote=settings.trusted_proxies.client_of(
                        self.peer, head.headers.getall("X-Forwarded-For", [])),
                    principal=(f"{principal.kind}:{principal.network_id}:{principal.user_id}"
                               if principal else None),
                    refusal=None))
            if trace.span is not None:
                plane.tracing().finish(
                    trace, route=admitted.rule.name, method=head.method, status=status,
                    region=region.name, upstream=chosen[-1] if chosen else None,
                    principal=admitted.principal)
        if not keep_alive:
            self._close()

    def _upstream_headers(self, head: Head, admitted: Admitted, request_id: str,
                          trace: RequestTrace) -> CIMultiDict[str]:
        plane = self._plane
        settings = plane.settings()
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
        if principal is not None:
            headers.update(principal.identity_headers())
            headers["X-Gateway-Push-Events"] = plane.push_value(principal.network_id)
        return headers

    # -- answers ------------------------------------------------------------------------

    def _head_bytes(self, status: int, reason: str, headers: CIMultiDict[str],
                    request_id: str, warning: str | None, keep_alive: bool) -> bytes:
        server = headers.get("Server")
        if server is None or server.startswith("Python/"):
            headers["Server"] = SERVER  # as the aiohttp path: never advertise a framework
        if "Date" not in headers:
            headers["Date"] = http_date()
        headers["X-Request-Id"] = request_id
        if warning:
            headers["Warning"] = warning
        if not keep_alive:
            headers["Connection"] = "close"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def _write_error(self, exc: GatewayError, request_id: str, warning: str | None,
                     keep_alive: bool) -> int:
        body = error_body(exc.status, exc.message, code=exc.code, detail=exc.detail)
        headers: CIMultiDict[str] = CIMultiDict(exc.headers)
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
        reason = _REASONS.get(exc.status, "Error")
        self._write(self._head_bytes(exc.status, reason, headers, request_id, warning,
                                     keep_alive) + body)
        return len(body)

    async def _relay(self, upstream: Relayable, request_id: str, warning: str | None,
                     keep_alive: bool) -> tuple[int, bool]:
        """Write the upstream's answer; (body bytes sent, whether to keep the connection)."""
        headers = forwarded_response_headers(upstream.headers)
        length = upstream.content_length
        bodiless = upstream.status in (204, 304) or 100 <= upstream.status < 200
        if bodiless:
            self._write(self._head_bytes(upstream.status, upstream.reason, headers,
                                         request_id, warning, keep_alive))
            return 0, keep_alive
        if length is not None and length <= SMALL_BODY:
            body = await upstream.read()
            headers["Content-Length"] = str(len(body))
            self._write(self._head_bytes(upstream.status, upstream.reason, headers,
                                         request_id, warning, keep_alive) + body)
            return len(body), keep_alive
        chunked = length is None
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(length)
        self._write(self._head_bytes(upstream.status, upstream.reason, headers, request_id,
                                     warning, keep_alive))
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
        if self._transport is not None and not self._gone:
            self._transport.write(data)

    async def _drain(self) -> None:
        if self._gone:
            raise ConnectionResetError(_PAUSED_MESSAGE)
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

    def hand_off(self) -> None:
        """Give the connection, with every byte not yet consumed, to aiohttp's protocol."""
        transport = self._transport
        if transport is None or self._gone:
            return
        self._disarm()
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

    def _arm(self, seconds: float, callback: Callable[[], None], kind: str = "") -> None:
        self._disarm()
        self._timer_kind = kind
        if seconds > 0:
            self._timer = asyncio.get_running_loop().call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_kind = ""

    def _timed_out(self) -> None:
        """A head that did not arrive in time (slowloris), or an idle connection."""
        self._timer = None
        self._close()

    def _body_timed_out(self) -> None:
        """A small body that stopped arriving: 408 and close (API.md section 4a)."""
        self._timer = None
        if self._busy or self._gone:
            return
        exc = GatewayError(408, "request timeout")
        self._write_error(exc, request_id_for(None), None, keep_alive=False)
        self._close()

    def _pause_reading(self) -> None:
        if self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _close(self) -> None:
        self._disarm()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def close_when_idle(self) -> bool:
        """Close now if no request is in flight (shutdown); True if it was idle."""
        if self._busy:
            return False
        self._close()
        return True

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Request Entity Too Large",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

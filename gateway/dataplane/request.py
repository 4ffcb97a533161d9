"""One request head, parsed by httptools, and the decision whether the data plane may
serve it itself. Pure apart from the parser: nothing here touches a socket.

The data plane serves only the plain, common shape of a proxied request (HTTP/1.1,
a method with no special framing, no body or a small one with Content-Length, a bearer
token or none, a route the route table sends upstream, a credential the decision
admits). Anything else is handed, bytes untouched, to the aiohttp application on the
same connection, which answers it exactly as before: that is how the contract's
errors, refusals, WebSockets, CORS and the built-in endpoints keep one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools
from multidict import CIMultiDict

MAX_HEAD = 32 * 1024  # a longer head is handed off (aiohttp answers 414 or 431)
MAX_HEADERS = 100
FAST_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Framing and negotiation that aiohttp implements: handed off.
_HANDED_OFF = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te",
                         b"http2-settings"})


@dataclass(slots=True, init=False)  # not frozen: a frozen dataclass is slower to make
class Head:
    method: str
    target: str  # the raw request target, as sent
    headers: CIMultiDict[str]
    content_length: int
    keep_alive: bool
    size: int  # bytes of the head, CRLF CRLF included

    # __init__ written out (init=False): see gateway.auth.principal.Principal.
    def __init__(self, method: str, target: str, headers: CIMultiDict[str],
                 content_length: int, keep_alive: bool, size: int) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.size = size


class _Collector:
    """httptools callbacks for one head at a time."""

    __slots__ = ("complete", "fields", "keep_alive", "message_complete", "parser", "url")

    def __init__(self) -> None:
        self.parser: httptools.HttpRequestParser | None = None
        self.reset()

    def reset(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.keep_alive = False
        self.message_complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True
        # Only meaningful now: once the message completes, llhttp resets its flags.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.message_complete = True


def head_end(buffer: bytes | bytearray) -> int:
    """Where the head ends in `buffer` (after CRLF CRLF), -1 if not yet there."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
    return -1 if end < 0 else end + 4


# Heads that end a line with a bare CR or LF: llhttp and the CRLF CRLF split above must
# agree on where a head ends, so such a head is never the data plane's.
_BARE_LINE_BREAKS = (
    b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\rHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",
)


def _llhttp_refuses_bare_line_breaks() -> bool:
    """Whether the installed llhttp rejects every bare CR or LF in a head (it does since
    llhttp 9, strict by default): then the data plane need not scan each head for them."""
    for raw in _BARE_LINE_BREAKS:
        collector = _Collector()
        parser = httptools.HttpRequestParser(collector)
        collector.parser = parser
        try:
            parser.feed_data(raw)
        except httptools.HttpParserError:
            continue
        return False
    return True


STRICT_LINE_BREAKS = _llhttp_refuses_bare_line_breaks()


def parse_head(raw: bytes, *, max_url: int, max_field: int) -> Head | None:
    """`HeadReader.parse` with a reader of its own."""
    return HeadReader().parse(raw, max_url=max_url, max_field=max_field)


class HeadReader:
    """One connection's request heads, parsed in turn with one llhttp parser: after a
    complete kept-alive message without a body llhttp starts the next one afresh. After
    anything else (a body to come, a close, an error) the next head gets a new parser."""

    __slots__ = ("_collector", "_parser")

    def __init__(self) -> None:
        self._collector = _Collector()
        self._parser: httptools.HttpRequestParser | None = None

    def parse(self, raw: bytes, *, max_url: int, max_field: int) -> Head | None:
        """The head if the data plane can serve its shape, else None (hand it off)."""
        collector = self._collector
        collector.reset()
        parser = self._parser
        if parser is None:
            parser = collector.parser = httptools.HttpRequestParser(collector)
        self._parser = None  # kept again below only once it is back at a message start
        head = _parse(raw, parser, collector, max_url=max_url, max_field=max_field)
        if head is not None and collector.message_complete and collector.keep_alive:
            self._parser = parser
        return head


def _parse(raw: bytes, parser: httptools.HttpRequestParser, collector: _Collector, *,
           max_url: int, max_field: int) -> Head | None:
    # A byte beyond ASCII is answered by aiohttp with the contract's 400. A bare CR or
    # LF: see _BARE_LINE_BREAKS (counted here only with an llhttp that accepts them).
    if not raw.isascii():
        return None
    if not STRICT_LINE_BREAKS:
        crlf = raw.count(b"\r\n")
        if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
            return None
    try:
        parser.feed_data(raw)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None  # malformed, or an upgrade: aiohttp answers or upgrades it
    # HTTP/1.1 only, read off the request line llhttp has just checked (cheaper than
    # asking the parser for its version as text).
    line_end = raw.find(b"\r\n")
    if not collector.complete or raw[line_end - 9:line_end] != b" HTTP/1.1":
        return None
    method = parser.get_method().decode("ascii")
    url, fields = collector.url, collector.fields
    if method not in FAST_METHODS or len(url) + len(method) + 10 > max_url \
            or len(fields) > MAX_HEADERS:
        return None
    if len(raw) > max_field and any(len(n) + len(v) + 2 > max_field for n, v in fields):
        return None  # aiohttp answers 431
    # One pass over the fields: what hands the head off, and what is decoded for the rest.
    decoded: list[tuple[str, str]] = []
    hosts = 0
    lengths: list[bytes] = []
    for name, value in fields:
        lower = name.lower()
        if lower in _HANDED_OFF:
            return None
        if lower == b"host":
            hosts += 1
        elif lower == b"content-length":
            lengths.append(value)
        elif lower == b"connection" and b"upgrade" in value.lower():
            return None
        decoded.append((name.decode("ascii"), value.decode("ascii")))
    if hosts != 1 or len(lengths) > 1:
        return None
    length = 0
    if lengths:
        if not lengths[0].strip().isdigit():
            return None
        length = int(lengths[0])
    headers: CIMultiDict[str] = CIMultiDict(decoded)
    return Head(method, url.decode("ascii"), headers, length, collector.keep_alive, len(raw))

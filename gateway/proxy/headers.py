"""Which headers cross the proxy, in each direction. Pure functions: no I/O, no state.

Rules (RFC 9110 7.6.1 and API.md section 4):
- hop-by-hop headers, and every header named in a `Connection` header, stay on their hop;
- `X-Gateway-*` is the gateway's to set: a client's copies are always dropped;
- `X-Forwarded-*`, `Forwarded` and `X-Real-Ip` are believed only from trusted proxies.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import itertools
import os
import re
from collections.abc import Iterable
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

from gateway.tracing.request import TRACEPARENT, TRACESTATE, RequestTrace

HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)

GATEWAY_PREFIX = "x-gateway-"
MAX_REMEMBERED_NAME = 64  # header names up to this long are classified once, then looked up

# Headers about the client's address and the original request (`X-Forwarded-*` as a
# family, plus these), only as good as their sender.
_FORWARDED_PREFIX = "x-forwarded-"
_FORWARDING = frozenset({"forwarded", "x-real-ip"})

# Never copied from the client: aiohttp's client writes Host from the upstream URL,
# `Expect: 100-continue` was already answered to the client by the gateway (forwarding it
# would make the upstream call wait for a second 100 that some servers never send), and
# Content-Length is put back once, below, only if it is sound.
_REQUEST_DROP = frozenset({"host", "expect", "content-length"})

# Each side of the proxy frames its own body.
_RESPONSE_DROP = frozenset({"content-length", "transfer-encoding"})
_RESPONSE_STOP = frozenset(name.encode() for name in HOP_BY_HOP | _RESPONSE_DROP)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """The peers whose `X-Forwarded-*` headers are believed; parsed once at start-up."""

    __slots__ = ("_networks",)

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"not an IP network or address: {cidr!r}") from exc
        self._networks = tuple(networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({tuple(str(n) for n in self._networks)!r})"

    def trusts(self, peer: str | None) -> bool:
        """True if `peer` (an address as the socket reports it) is in a trusted network."""
        if not self._networks:
            return False
        address = _parse_ip(peer)
        if address is None:
            return False
        # An IPv4 client of a dual-stack socket shows up as ::ffff:a.b.c.d; match either form.
        candidates: tuple[IPAddress, ...] = (address,)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates = (address, address.ipv4_mapped)
        return any(a in network for a in candidates for network in self._networks)


    def client_of(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The real client behind trusted proxies: the right-most address of
        `X-Forwarded-For` that is not itself a trusted proxy; `peer` when it is untrusted.
        Logs, audit entries and rate limits key on this, not on the load balancer."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            if _parse_ip(hop) is None:
                break  # a garbled chain: stop believing it here
            if not self.trusts(hop):
                return hop
        return peer


# Never forwarded, in any spelling: credentials the gateway consumed or that only it may
# read, and method overrides (a GET-only rule must not reach an upstream as a DELETE).
_CREDENTIALS = frozenset({"x-server-key"})
METHOD_OVERRIDES = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
CONSOLE_COOKIE = "gateway_console"


def forwarded_request_headers(
    incoming: MultiMapping[str],
    *,
    peer: str | None,
    scheme: str,
    host: str | None,
    trusted: TrustedProxies,
    request_id: str,
    keep_upgrade: bool = False,
    drop_authorization: bool = False,
    client_cert_header: str | None = None,
    trace: RequestTrace | None = None,
) -> CIMultiDict[str]:
    """The headers to send upstream for a request received with `incoming`: the one
    outbound filter, for HTTP requests and WebSocket handshakes alike.

    `peer` is the socket's remote address (None for a Unix socket), `scheme` and `host`
    what the client used to reach the gateway. The caller adds its own `X-Gateway-*`
    headers afterwards.

    Dropped whatever their case, and also when spelled with `_` for `-` (CGI-style
    servers read `X_Gateway_User_Id` as `X-Gateway-User-Id`): hop-by-hop headers and
    those named in `Connection`; `X-Gateway-*`; `client_cert_header`; `x-server-key`;
    method overrides; `Authorization` when `drop_authorization` (a gateway-issued token);
    the console cookie inside `Cookie` (other cookies pass).

    `Content-Length` is kept when the client sent one (and no `Transfer-Encoding`): the
    aiohttp client then sends the streamed body with that fixed length instead of
    re-chunking it. A chunked request goes out chunked again.

    With `trace` (the request's W3C trace context), its `traceparent` replaces the
    client's: the gateway's span is the upstream's parent. The client's `tracestate`
    passes only when its `traceparent` was kept: it means nothing in another trace.

    With `keep_upgrade` (a WebSocket handshake), `Upgrade`, `Connection: Upgrade` and the
    `Sec-WebSocket-*` headers pass through. A caller that opens its own WebSocket to the
    upstream (`ClientSession.ws_connect`) negotiates key, version and extensions itself
    and should pass only `Sec-WebSocket-Protocol` on.
    """
    tokens = _connection_tokens(incoming)
    named_by_connection = {t.replace("_", "-") for t in tokens} if tokens else _NONE_NAMED
    from_trusted = trusted.trusts(peer)
    cert_header = client_cert_header.lower().replace("_", "-") if client_cert_header else None
    out: CIMultiDict[str] = CIMultiDict()
    received_for: list[str] = []
    upgrade = False
    for name, value in incoming.items():
        if keep_upgrade:
            key = name.lower()
            if key == "upgrade" or key.startswith("sec-websocket-"):
                upgrade = upgrade or key == "upgrade"
                out.add(name, value)
                continue
        kind, canonical = _request_header_kind(name)
        if kind is _Kind.DROP or canonical in named_by_connection or canonical == cert_header:
            continue
        if kind is _Kind.AUTHORIZATION and drop_authorization:
            continue
        if kind is _Kind.COOKIE:
            value = without_console_cookie(value)
            if not value:
                continue
        elif kind is _Kind.FORWARDING or kind is _Kind.FORWARDED_FOR:
            if not from_trusted:
                continue
            if kind is _Kind.FORWARDED_FOR:
                received_for.append(value)
                continue
        out.add(name, value)

    # `add`, not `out[name] =`, for names the loop never keeps (each a DROP kind, or
    # checked just before): a set scans every entry for copies to replace.
    length = _content_length(incoming)
    if length is not None and not _chunked(incoming):
        out.add("Content-Length", length)
    if upgrade:
        out.add("Connection", "Upgrade")

    client = _peer_text(peer)
    chain = [hop.strip() for value in received_for for hop in value.split(",") if hop.strip()]
    if client is not None:
        chain.append(client)
    if chain:
        out.add("X-Forwarded-For", ", ".join(chain))
    # From a trusted proxy its values stand; we only fill in what it left out.
    if "X-Forwarded-Proto" not in out:
        out.add("X-Forwarded-Proto", scheme)
    if host is not None and "X-Forwarded-Host" not in out:
        out.add("X-Forwarded-Host", host)
    if "Forwarded" in out:  # only present when it came from a trusted proxy
        _append_forwarded(out, _ip(peer), scheme, host)
    out.add("X-Request-Id", request_id)
    if trace is not None:  # after the loop: no cost per header
        out[TRACEPARENT] = trace.traceparent  # replaces every client copy
        if not trace.keeps_tracestate and TRACESTATE in out:
            del out[TRACESTATE]
    return out


_NONE_NAMED: frozenset[str] = frozenset()


class _Kind(enum.Enum):
    """What the outbound filter does with a request header, by its name alone."""

    DROP = enum.auto()
    KEEP = enum.auto()
    AUTHORIZATION = enum.auto()  # kept unless the gateway consumed the token
    COOKIE = enum.auto()  # kept without the console cookie
    FORWARDING = enum.auto()  # kept from trusted proxies only
    FORWARDED_FOR = enum.auto()  # from trusted proxies only, extended with our hop


def _request_header_kind(name: str) -> tuple[_Kind, str]:
    # Names repeat: each is worked out once, but only short ones are remembered (a
    # client could otherwise park thousands of 8 KiB names in the cache).
    return _remembered_kind(name) if len(name) <= MAX_REMEMBERED_NAME else _kind(name)


def _kind(name: str) -> tuple[_Kind, str]:
    """The header's kind and its canonical name (lower case, `_` read as `-`). A `_`
    spelling of a header the gateway reads or rewrites is dropped: an upstream that
    reads it as the `-` one would see what the gateway did not check."""
    key = name.lower()
    canonical = key.replace("_", "-")
    if (canonical in HOP_BY_HOP or canonical in _REQUEST_DROP or canonical in _CREDENTIALS
            or canonical in METHOD_OVERRIDES or canonical.startswith(GATEWAY_PREFIX)
            or canonical == "x-request-id"):  # X-Request-Id is set below
        return _Kind.DROP, canonical
    special = canonical in ("authorization", "cookie") or (
        canonical.startswith(_FORWARDED_PREFIX) or canonical in _FORWARDING)
    if not special:
        return _Kind.KEEP, canonical
    if canonical != key:
        return _Kind.DROP, canonical
    if key == "authorization":
        return _Kind.AUTHORIZATION, canonical
    if key == "cookie":
        return _Kind.COOKIE, canonical
    if key == "x-forwarded-for":
        return _Kind.FORWARDED_FOR, canonical
    return _Kind.FORWARDING, canonical


_remembered_kind = functools.lru_cache(maxsize=2048)(_kind)


def _chunked(headers: MultiMapping[str]) -> bool:
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        return "Transfer-Encoding" in headers
    return any(name.lower() == "transfer-encoding" for name in headers)


def forwarded_response_fields(
    upstream: Iterable[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    """The upstream response's header fields (raw, as parsed) to send back to the client.

    Hop-by-hop and `Connection`-named headers are dropped, and so are `Content-Length`
    and `Transfer-Encoding`: each side of the proxy frames its own body (the caller sets
    them for the body it sends). `Content-Encoding` is kept, so the caller must relay the
    upstream body undecoded.
    """
    out = []
    named: set[bytes] = set()
    for name, value in upstream:
        if (_remembered_dropped(name) if len(name) <= MAX_REMEMBERED_NAME
                else _response_header_dropped(name)):
            if name.lower() == b"connection":
                named.update(token.strip().lower() for token in value.split(b","))
            continue
        out.append((name, value))
    if named - _RESPONSE_STOP:  # a header named in Connection: dropped too
        out = [(name, value) for name, value in out if name.lower() not in named]
    return out


def _response_header_dropped(name: bytes) -> bool:
    return name.lower() in _RESPONSE_STOP


_remembered_dropped = functools.lru_cache(maxsize=1024)(_response_header_dropped)


def forwarded_response_headers(upstream: MultiMapping[str]) -> CIMultiDict[str]:
    """`forwarded_response_fields` for headers already decoded."""
    raw = [(_encode(n), _encode(v)) for n, v in upstream.items()]
    return CIMultiDict((_decode(n), _decode(v)) for n, v in forwarded_response_fields(raw))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def without_console_cookie(cookie: str) -> str:
    """A `Cookie` header value without the gateway's console session (`a=1; b=2`)."""
    if CONSOLE_COOKIE not in cookie.lower():
        return cookie
    kept = [
        pair.strip() for pair in cookie.split(";")
        if pair.strip() and pair.partition("=")[0].strip().lower() != CONSOLE_COOKIE
    ]
    return "; ".join(kept)


def without_query_parameter(query: str, name: str) -> str:
    """A raw query string without every `name=...` (any spelling of `name` that decodes
    to it); the others pass exactly as the client encoded them."""
    kept = [
        item for item in query.split("&")
        if unquote(item.partition("=")[0].replace("+", " ")) != name
    ]
    return "&".join(kept)


def is_websocket_upgrade(headers: MultiMapping[str]) -> bool:
    """`Upgrade: websocket` with `upgrade` among the `Connection` tokens."""
    upgrade = headers.get("Upgrade", "")
    return upgrade.lower() == "websocket" and "upgrade" in _connection_tokens(headers)


def valid_request_id(value: str | None) -> bool:
    """1-128 characters of `A-Z a-z 0-9 . _ : -` (UUIDs in any usual spelling fit)."""
    return value is not None and _REQUEST_ID.fullmatch(value) is not None


class _RequestIds:
    """32 hex digits: a random per-process prefix and a counter (unique, not secret).

    Cheaper than uuid4 (no system call per request); a forked worker draws a new prefix.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def next(self) -> str:
        # to_bytes().hex(), not a format specification: see accesslog.THREE_DIGITS.
        return self.prefix + (next(self.counter) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


_REQUEST_IDS = _RequestIds()
os.register_at_fork(after_in_child=_REQUEST_IDS.reset)


def new_request_id() -> str:
    return _REQUEST_IDS.next()


def request_id_for(value: str | None) -> str:
    """The client's `X-Request-Id` if well-formed, else a new one."""
    return value if value is not None and valid_request_id(value) else new_request_id()


def _connection_tokens(headers: MultiMapping[str]) -> frozenset[str]:
    """Lower-cased names listed in every `Connection` header (`close, X-Secret`)."""
    # The common case, cheap: a case-insensitive mapping without a Connection header.
    if isinstance(headers, CIMultiDict | CIMultiDictProxy) and "Connection" not in headers:
        return frozenset()
    return frozenset(
        token.strip().lower()
        for name, value in headers.items()
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def _content_length(headers: MultiMapping[str]) -> str | None:
    # Several differing values are a framing error; never pick one of them.
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        if "Content-Length" not in headers:
            return None
        values = {v.strip() for v in headers.getall("Content-Length")}
    else:
        values = {v.strip() for k, v in headers.items() if k.lower() == "content-length"}
    if len(values) != 1:
        return None
    (value,) = values
    return value if value.isascii() and value.isdigit() else None


@functools.lru_cache(maxsize=4096)  # peers repeat; parsing an address is slow-ish
def _parse_ip(peer: str | None) -> IPAddress | None:
    if not peer:
        return None
    try:
        return ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _peer_text(peer: str | None) -> str | None:
    """`_ip(peer)` as text, the hop added to `X-Forwarded-For`."""
    address = _ip(peer)
    return None if address is None else str(address)


def _ip(peer: str | None) -> IPAddress | None:
    """The peer's address, an IPv4-mapped IPv6 one written as plain IPv4."""
    address = _parse_ip(peer)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _append_forwarded(
    out: CIMultiDict[str], client: IPAddress | None, scheme: str, host: str | None
) -> None:
    """Add our hop to the RFC 7239 `Forwarded` list a trusted proxy started."""
    if client is None:
        node = "unknown"
    elif isinstance(client, ipaddress.IPv6Address):
        node = f"[{client}]"
    else:
        node = str(client)
    pairs = [f"for={_forwarded_value(node)}", f"proto={_forwarded_value(scheme)}"]
    if host is not None:
        pairs.append(f"host={_forwarded_value(host)}")
    received = ", ".join(out.popall("Forwarded"))
    out["Forwarded"] = f"{received}, {';'.join(pairs)}"


def _forwarded_value(value: str) -> str:
    if _TOKEN.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'

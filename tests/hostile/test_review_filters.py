"""Differential: the outbound request filter and the response filter, as rewritten for the
hot path (a cached classification per header name, raw byte fields), against the
versions they replaced (6646db3, copied below as the reference). Whatever the headers,
their spelling (case, `_` for `-`), the `Connection` tokens, the client-cert header, the
peer (trusted or not), the upgrade flag, cookies and the trace, both give the same
headers in the same order.

Also: what the per-name caches keep when names are long."""

from __future__ import annotations

import gc
import ipaddress
import tracemalloc

from hypothesis import example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiMapping

from gateway.proxy.headers import (
    _FORWARDED_PREFIX,
    _FORWARDING,
    _REQUEST_DROP,
    _RESPONSE_DROP,
    GATEWAY_PREFIX,
    HOP_BY_HOP,
    METHOD_OVERRIDES,
    TrustedProxies,
    _append_forwarded,
    forwarded_request_headers,
    forwarded_response_fields,
    without_console_cookie,
)
from gateway.tracing.request import TRACEPARENT, TRACESTATE, RequestTrace, incoming_trace

_CREDENTIALS = frozenset({"x-server-key"})

# -- the reference: the filters as they were before the hot-path rewrite (6646db3) ------


def _old_connection_tokens(headers: MultiMapping[str]) -> frozenset[str]:
    if isinstance(headers, CIMultiDict | CIMultiDictProxy) and "Connection" not in headers:
        return frozenset()
    return frozenset(
        token.strip().lower()
        for name, value in headers.items()
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def _old_content_length(headers: MultiMapping[str]) -> str | None:
    values = {v.strip() for k, v in headers.items() if k.lower() == "content-length"}
    if len(values) != 1:
        return None
    (value,) = values
    return value if value.isascii() and value.isdigit() else None


def _old_parse_ip(peer: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not peer:
        return None
    try:
        return ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        return None


def _old_ip(peer: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    address = _old_parse_ip(peer)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def old_forwarded_request_headers(
    incoming: MultiMapping[str], *, peer: str | None, scheme: str, host: str | None,
    trusted: TrustedProxies, request_id: str, keep_upgrade: bool = False,
    drop_authorization: bool = False, client_cert_header: str | None = None,
    trace: RequestTrace | None = None,
) -> CIMultiDict[str]:
    named_by_connection = {t.replace("_", "-") for t in _old_connection_tokens(incoming)}
    from_trusted = trusted.trusts(peer)
    chunked = any(name.lower() == "transfer-encoding" for name in incoming)
    cert_header = client_cert_header.lower().replace("_", "-") if client_cert_header else None
    out: CIMultiDict[str] = CIMultiDict()
    received_for: list[str] = []
    upgrade = False
    for name, value in incoming.items():
        key = name.lower()
        canonical = key.replace("_", "-")
        if keep_upgrade and (key == "upgrade" or key.startswith("sec-websocket-")):
            upgrade = upgrade or key == "upgrade"
            out.add(name, value)
            continue
        if (canonical in HOP_BY_HOP or canonical in named_by_connection
                or canonical in _REQUEST_DROP or canonical in _CREDENTIALS
                or canonical in METHOD_OVERRIDES or canonical == cert_header):
            continue
        if canonical.startswith(GATEWAY_PREFIX) or canonical == "x-request-id":
            continue
        if canonical == "authorization" and (drop_authorization or canonical != key):
            continue
        if canonical == "cookie":
            if canonical != key:
                continue
            value = without_console_cookie(value)
            if not value:
                continue
        if canonical.startswith(_FORWARDED_PREFIX) or canonical in _FORWARDING:
            if not from_trusted or canonical != key:
                continue
            if key == "x-forwarded-for":
                received_for.append(value)
                continue
        out.add(name, value)

    length = _old_content_length(incoming)
    if length is not None and not chunked:
        out["Content-Length"] = length
    if upgrade:
        out["Connection"] = "Upgrade"

    client = _old_ip(peer)
    chain = [hop.strip() for value in received_for for hop in value.split(",") if hop.strip()]
    if client is not None:
        chain.append(str(client))
    if chain:
        out["X-Forwarded-For"] = ", ".join(chain)
    if "X-Forwarded-Proto" not in out:
        out["X-Forwarded-Proto"] = scheme
    if host is not None and "X-Forwarded-Host" not in out:
        out["X-Forwarded-Host"] = host
    if "Forwarded" in out:
        _append_forwarded(out, client, scheme, host)
    out["X-Request-Id"] = request_id
    if trace is not None:
        out[TRACEPARENT] = trace.traceparent
        if not trace.keeps_tracestate and TRACESTATE in out:
            del out[TRACESTATE]
    return out


def old_forwarded_response_headers(upstream: MultiMapping[str]) -> CIMultiDict[str]:
    named_by_connection = _old_connection_tokens(upstream)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        key = name.lower()
        if key in HOP_BY_HOP or key in named_by_connection or key in _RESPONSE_DROP:
            continue
        out.add(name, value)
    return out


# -- generated requests -------------------------------------------------------------------

NAMES = (
    "Host", "Expect", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
    "Proxy-Connection", "TE", "Trailer", "Upgrade", "Proxy-Authorization",
    "Proxy-Authenticate", "X-Server-Key", "X-HTTP-Method-Override", "X-HTTP-Method",
    "X-Method-Override", "X-Gateway-User-Id", "X-Gateway-Role", "X-Gateway-", "X-Request-Id",
    "Authorization", "Cookie", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
    "X-Forwarded-", "Forwarded", "X-Real-Ip", "X-SSL-Client-Cert", "Sec-WebSocket-Key",
    "Sec-WebSocket-Protocol", "traceparent", "tracestate", "Accept", "X-Custom", "Cookies",
    "Authorizations", "X-Forwarded", "X-Gateway", "Content-Type", "X-Secret",
)
TRUSTED = TrustedProxies(["10.0.0.0/8", "::1"])
PEERS = ("10.1.2.3", "203.0.113.9", "::1", "::ffff:10.0.0.7", "[::1]", None, "garbage")
CERT_HEADERS = (None, "X-SSL-Client-Cert", "x_ssl_client_cert", "X-Forwarded-Client-Cert",
                "Cookie", "Accept")


@st.composite
def spelling(draw: st.DrawFn, name: str) -> str:
    chars = [draw(st.sampled_from([c.lower(), c.upper()])) if c.isalpha() else c for c in name]
    return "".join(draw(st.sampled_from(["-", "_"])) if c == "-" else c for c in chars)


token = st.text(alphabet="abcxyzXYZ-_019", min_size=1, max_size=8)
names = st.one_of(st.sampled_from(NAMES).flatmap(spelling), token)
plain_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                       max_size=16)


@st.composite
def value_for(draw: st.DrawFn, name: str) -> str:
    canonical = name.lower().replace("_", "-")
    if canonical in ("connection", "proxy-connection"):
        listed = draw(st.lists(names | st.sampled_from(["close", "keep-alive", "upgrade", ""]),
                               max_size=4))
        return draw(st.sampled_from([",", ", ", " ,\t"])).join(listed)
    if canonical == "cookie":
        pairs = draw(st.lists(st.tuples(
            st.sampled_from(["a", "gateway_console", "GATEWAY_CONSOLE", "theme", " "]),
            st.text(alphabet="xyz019", max_size=4)), max_size=4))
        return "; ".join(f"{n}={v}" for n, v in pairs)
    if canonical in ("x-forwarded-for", "forwarded", "x-real-ip"):
        hops = draw(st.lists(st.sampled_from(["198.51.100.1", "10.9.9.9", " ", "junk",
                                              "for=1.2.3.4", "::1"]), max_size=3))
        return ",".join(hops)
    if canonical == "content-length":
        return draw(st.sampled_from(["0", "12", " 7 ", "1,1", "x", "", "٣"]))
    if canonical == "traceparent":
        return draw(st.sampled_from([
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "junk"]))
    return draw(plain_values)


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[str, str]]:
    chosen = draw(st.lists(names, max_size=14))
    return [(name, draw(value_for(name))) for name in chosen]


def _container(kind: str, fields: list[tuple[str, str]]) -> MultiMapping[str]:
    if kind == "ci":
        return CIMultiDict(fields)
    if kind == "proxy":  # what aiohttp's request.headers is
        return CIMultiDictProxy(CIMultiDict(fields))
    return MultiDict(fields)  # case-sensitive: the fallback branches


FILTER_SETTINGS = settings(max_examples=600, deadline=None)


@FILTER_SETTINGS
@given(header_lists(), st.sampled_from(["ci", "proxy", "plain"]), st.sampled_from(PEERS),
       st.booleans(), st.booleans(), st.sampled_from(CERT_HEADERS), st.booleans(),
       st.sampled_from(["http", "https"]), st.sampled_from([None, "api.example", "a b"]))
@example([("X_Forwarded_For", "1.2.3.4"), ("Cookie", "gateway_console=1")], "ci",
         "10.1.2.3", False, False, None, False, "https", "api.example")
@example([("Connection", "x_secret"), ("X-Secret", "1"), ("x_secret", "2")], "proxy",
         None, False, True, "x_ssl_client_cert", True, "http", None)
def test_the_outbound_filter_matches_the_one_it_replaced(
        fields: list[tuple[str, str]], kind: str, peer: str | None, keep_upgrade: bool,
        drop_authorization: bool, cert_header: str | None, traced: bool, scheme: str,
        host: str | None) -> None:
    incoming = _container(kind, fields)
    trace = incoming_trace(CIMultiDict(fields)) if traced else None
    arguments = dict(peer=peer, scheme=scheme, host=host, trusted=TRUSTED, request_id="r-1",
                     keep_upgrade=keep_upgrade, drop_authorization=drop_authorization,
                     client_cert_header=cert_header, trace=trace)
    new = forwarded_request_headers(incoming, **arguments)  # type: ignore[arg-type]
    old = old_forwarded_request_headers(incoming, **arguments)  # type: ignore[arg-type]
    assert list(new.items()) == list(old.items())
    # And again: the second time every name comes from the cache.
    again = forwarded_request_headers(incoming, **arguments)  # type: ignore[arg-type]
    assert list(again.items()) == list(old.items())


# -- generated responses ------------------------------------------------------------------

RESPONSE_NAMES = ("Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Upgrade",
                  "Trailer", "TE", "Proxy-Authenticate", "Server", "Date", "X-Request-Id",
                  "Warning", "X-Secret", "Set-Cookie", "Content-Type", "X-Upstream")
# Field values as llhttp passes them: visible ASCII, SP/HTAB inside, obs-text (0x80-0xFF).
field_values = st.binary(max_size=12).map(
    lambda raw: bytes(b if b >= 0x80 or 0x21 <= b <= 0x7E or b in (0x20, 0x09) else 0x61
                      for b in raw).strip(b" \t"))


@st.composite
def response_fields(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    chosen = draw(st.lists(st.sampled_from(RESPONSE_NAMES).flatmap(spelling)
                           | st.text(alphabet="abcXYZ-019", min_size=1, max_size=6),
                           max_size=12))
    fields = []
    for name in chosen:
        if name.lower() == "connection":
            listed = draw(st.lists(st.sampled_from(RESPONSE_NAMES).flatmap(spelling)
                                   | st.sampled_from(["close", "", "X-Other"]), max_size=4))
            value = draw(st.sampled_from([",", ", ", "\t,  "])).join(listed).encode()
        else:
            value = draw(field_values)
        fields.append((name.encode(), value))
    return fields


@FILTER_SETTINGS
@given(response_fields())
def test_the_response_filter_matches_the_one_it_replaced(
        fields: list[tuple[bytes, bytes]]) -> None:
    decoded = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in fields)
    old = [(n.encode("latin-1"), v.encode("latin-1"))
           for n, v in old_forwarded_response_headers(decoded).items()]
    assert forwarded_response_fields(fields) == old


# -- the per-name cache -------------------------------------------------------------------


def test_long_header_names_are_not_kept_by_the_filter() -> None:
    """The per-name classification is cached; names of any length used to be, so 2048
    names of 8 KB (the header size limit) kept about 50 MB per worker for good."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for batch in range(512):  # 512 requests of 4 long names (a 32 KiB head)
            fields = [(f"X-{batch:04d}-{i}-" + "n" * 8000, "v") for i in range(4)]
            forwarded_request_headers(
                CIMultiDict(fields), peer="203.0.113.9", scheme="http", host="h",
                trusted=TrustedProxies(), request_id="r")
            forwarded_response_fields([(name.encode(), b"v") for name, _ in fields])
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 4_000_000, f"{kept / 1e6:.1f} MB kept after the requests are gone"

"""The outbound filter, property-tested: whatever the spelling (case, `_` for `-`), no
credential the gateway consumed, no method override, no X-Gateway-* and no client-cert
header reaches an upstream; other headers, cookies and query parameters pass."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.proxy.headers import (
    TrustedProxies,
    forwarded_request_headers,
    without_console_cookie,
    without_query_parameter,
)

CERT_HEADER = "X-SSL-Client-Cert"
FORBIDDEN = ("x-server-key", "x-http-method-override", "x-http-method", "x-method-override",
             "x-gateway-user-id", "x-gateway-role", "x-gateway-anything", "x-ssl-client-cert",
             "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer",
             "proxy-authorization")
BENIGN = ("accept", "x-custom", "x-request-note", "content-type", "user-agent", "x-api-key")


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


@st.composite
def spelling(draw: st.DrawFn, name: str) -> str:
    """`name` in a random case, each `-` possibly written `_`."""
    chars = [draw(st.sampled_from([c.lower(), c.upper()])) if c.isalpha() else c for c in name]
    return "".join(draw(st.sampled_from(["-", "_"])) if c == "-" else c for c in chars)


values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                 max_size=12)


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    names = draw(st.lists(st.sampled_from(FORBIDDEN + BENIGN + ("authorization",)),
                          min_size=1, max_size=12))
    return [(draw(spelling(name)), draw(values)) for name in names]


@given(headers(), st.booleans())
def test_nothing_forbidden_crosses_in_any_spelling(sent: list[tuple[str, str]],
                                                   consumed: bool) -> None:
    out = forwarded_request_headers(
        CIMultiDict(sent), peer="203.0.113.9", scheme="https", host="api.example",
        trusted=TrustedProxies(), request_id="r1", drop_authorization=consumed,
        client_cert_header=CERT_HEADER,
    )
    names = {_canonical(name) for name in out}
    assert not names & set(FORBIDDEN)
    assert not any(name.startswith("x-gateway-") for name in names)
    if consumed:
        assert "authorization" not in names
    # Only the exact `Authorization` spelling may pass (an `_` one is someone's trick).
    assert all(name.lower() == "authorization" for name in out
               if _canonical(name) == "authorization")
    for name, value in sent:
        if name.lower() in BENIGN:  # benign names pass in their own spelling, unchanged
            assert value in out.getall(name, []), (name, value)


cookie_names = st.sampled_from(["theme", "lang", "gateway_console", "GATEWAY_CONSOLE",
                                "session", "gateway_console_x"])


@given(st.lists(st.tuples(cookie_names, st.text(alphabet="abcXYZ019-_", min_size=1,
                                                   max_size=8)), min_size=1, max_size=6))
def test_the_console_cookie_is_cut_and_the_others_kept(pairs: list[tuple[str, str]]) -> None:
    header = "; ".join(f"{name}={value}" for name, value in pairs)
    kept = without_console_cookie(header)
    expected = [f"{n}={v}" for n, v in pairs if n.lower() != "gateway_console"]
    assert kept == "; ".join(expected)


def test_the_cookie_header_goes_when_only_the_console_cookie_was_in_it() -> None:
    out = forwarded_request_headers(
        CIMultiDict([("Cookie", "gateway_console=abc"), ("Cookie", "a=1; gateway_console=x")]),
        peer=None, scheme="http", host=None, trusted=TrustedProxies(), request_id="r")
    assert out.getall("Cookie") == ["a=1"]


@given(st.lists(st.sampled_from(["EIO=3", "transport=websocket", "token=abc", "t%6Fken=x",
                                 "token", "tokens=1", "a=%20b", "token=", "x=token"]),
                max_size=8))
def test_the_upgrade_token_leaves_the_query_and_nothing_else_does(items: list[str]) -> None:
    kept = without_query_parameter("&".join(items), "token")
    expected = [i for i in items if i.partition("=")[0] not in ("token", "t%6Fken")]
    assert kept == "&".join(expected)

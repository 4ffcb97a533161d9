"""Header rules of the proxy, as tables: trust, spoofing, hop-by-hop, forwarding, request ids."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict

from gateway.proxy.headers import (
    HOP_BY_HOP,
    TrustedProxies,
    forwarded_request_headers,
    forwarded_response_headers,
    new_request_id,
    request_id_for,
    valid_request_id,
)

TRUSTED = TrustedProxies(("10.0.0.0/8", "::1/128"))
PEER_TRUSTED = "10.0.0.7"
PEER_UNTRUSTED = "203.0.113.9"
REQUEST_ID = "req-1"


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def _forward(
    *pairs: tuple[str, str],
    peer: str | None = PEER_UNTRUSTED,
    scheme: str = "https",
    host: str | None = "api.example",
    keep_upgrade: bool = False,
) -> CIMultiDict[str]:
    return forwarded_request_headers(
        _headers(*pairs),
        peer=peer,
        scheme=scheme,
        host=host,
        trusted=TRUSTED,
        request_id=REQUEST_ID,
        keep_upgrade=keep_upgrade,
    )


# --- who is trusted --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "peer", "trusted"),
    [
        (("10.0.0.0/8",), "10.1.2.3", True),
        (("10.0.0.0/8",), "11.0.0.1", False),
        (("10.0.0.0/8",), "::ffff:10.0.0.1", True),  # IPv4 client on a dual-stack socket
        (("10.0.0.0/8",), "::ffff:11.0.0.1", False),
        (("::ffff:10.0.0.0/104",), "::ffff:10.0.0.1", True),
        (("::1/128",), "::1", True),
        (("::1/128",), "127.0.0.1", False),
        (("127.0.0.1",), "127.0.0.1", True),  # a single address is a /32
        (("127.0.0.1",), "127.0.0.2", False),
        (("2001:db8::/32",), "2001:db8:1::5", True),
        (("2001:db8::/32",), "2001:db9::5", False),
        (("fe80::/10",), "fe80::1%eth0", True),
        (("0.0.0.0/0",), "::1", False),  # an IPv4 network never matches an IPv6 peer
        (("10.0.0.0/8", "192.168.0.0/16"), "192.168.4.4", True),
        ((), "10.0.0.1", False),
        (("10.0.0.0/8",), None, False),
        (("10.0.0.0/8",), "", False),
        (("10.0.0.0/8",), "not-an-address", False),
        (("10.0.0.0/8",), "10.0.0.1.5", False),
    ],
)
def test_trust_rules(cidrs: tuple[str, ...], peer: str | None, trusted: bool) -> None:
    assert TrustedProxies(cidrs).trusts(peer) is trusted


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "banana", ""])
def test_trusted_proxies_refuse_bad_networks(cidr: str) -> None:
    with pytest.raises(ValueError, match="not an IP network"):
        TrustedProxies([cidr])


# --- what is never forwarded -----------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # untrusted peer: itself
        ("10.0.0.2", [], "10.0.0.2"),  # a trusted peer that forwarded nothing
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["1.1.1.1, 198.51.100.1, 10.0.0.3"], "198.51.100.1"),  # proxy chain
        ("10.0.0.2", ["1.1.1.1", "198.51.100.1"], "198.51.100.1"),  # two header lines
        ("10.0.0.2", ["1.1.1.1, garbage"], "10.0.0.2"),  # a garbled chain is not believed
        ("10.0.0.2", ["10.0.0.9"], "10.0.0.2"),  # only proxies: the nearest one
    ],
)
def test_client_address_behind_trusted_proxies(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client_of(peer, forwarded_for) == client


def test_hop_by_hop_is_rfc_9110_list() -> None:
    assert {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    } == HOP_BY_HOP


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Host",
        "Expect",
    ],
)
def test_hop_by_hop_and_own_headers_are_dropped(name: str) -> None:
    out = _forward((name, "x"), ("Accept", "*/*"))
    assert name not in out
    assert out["Accept"] == "*/*"


@pytest.mark.parametrize(
    "connection",
    [
        "close, X-Secret",
        "X-SECRET",
        "keep-alive,x-secret",
        " , x-secret , ",
    ],
)
def test_headers_named_by_connection_are_dropped(connection: str) -> None:
    out = _forward(("Connection", connection), ("X-Secret", "s"), ("X-Other", "o"))
    assert "X-Secret" not in out
    assert "Connection" not in out
    assert out["X-Other"] == "o"


def test_every_connection_header_counts() -> None:
    out = _forward(
        ("Connection", "X-One"),
        ("connection", "X-Two"),
        ("X-One", "1"),
        ("X-Two", "2"),
        ("X-Three", "3"),
    )
    assert [k for k in out if not k.startswith("X-Forwarded-")] == ["X-Three", "X-Request-Id"]


@pytest.mark.parametrize(
    "name",
    [
        "x-gateway-user-id",
        "X-GATEWAY-ROLE",
        "X-Gateway-Network-Id",
        "X-Gateway-Token-Kind",
        "X-Gateway-Client-Cert-Sha256",
        "x-GaTeWaY-anything-new",
        "X_Gateway_User_Id",  # read as X-Gateway-User-Id by CGI-style servers
        "x-gateway_role",
    ],
)
@pytest.mark.parametrize("peer", [PEER_UNTRUSTED, PEER_TRUSTED, None])
def test_spoofed_gateway_headers_are_always_dropped(name: str, peer: str | None) -> None:
    out = _forward((name, "admin"), ("X-Gateway", "not-a-prefix-match"), peer=peer)
    assert not any(key.lower().replace("_", "-").startswith("x-gateway-") for key in out)
    assert out["X-Gateway"] == "not-a-prefix-match"


def test_end_to_end_headers_pass_in_order_with_repeats() -> None:
    pairs = [
        ("Accept", "text/html"),
        ("Cookie", "a=1"),
        ("Authorization", "Bearer t"),
        ("cookie", "b=2"),
        ("Sec-WebSocket-Key", "ignored-without-upgrade-but-harmless"),
    ]
    incoming = _headers(*pairs)
    out = _forward(*pairs)
    assert list(out.items())[:5] == pairs
    assert out.getall("Cookie") == ["a=1", "b=2"]
    assert incoming == _headers(*pairs)  # the input is not modified


# --- body framing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "content_length"),
    [
        ([("Content-Length", "42")], "42"),
        ([("Content-Length", "0")], "0"),
        ([("Content-Length", "42"), ("content-length", "42")], "42"),
        ([("Content-Length", "42"), ("Content-Length", "43")], None),
        ([("Content-Length", "-1")], None),
        ([("Content-Length", "٤٢")], None),  # non-ASCII digits
        ([("Transfer-Encoding", "chunked")], None),
        ([("Transfer-Encoding", "chunked"), ("Content-Length", "42")], None),
        ([], None),
    ],
)
def test_content_length_kept_only_for_fixed_length_bodies(
    pairs: list[tuple[str, str]], content_length: str | None
) -> None:
    out = _forward(*pairs)
    assert out.getall("Content-Length", []) == ([content_length] if content_length else [])
    assert "Transfer-Encoding" not in out


# --- X-Forwarded-* ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "received", "expected"),
    [
        pytest.param(
            PEER_UNTRUSTED,
            [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "http"),
             ("X-Forwarded-Host", "evil.example")],
            {"X-Forwarded-For": PEER_UNTRUSTED, "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "api.example"},
            id="untrusted-spoof-replaced",
        ),
        pytest.param(
            PEER_UNTRUSTED,
            [],
            {"X-Forwarded-For": PEER_UNTRUSTED, "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "api.example"},
            id="untrusted-none-received",
        ),
        pytest.param(
            PEER_TRUSTED,
            [("X-Forwarded-For", "1.2.3.4, 5.6.7.8"), ("X-Forwarded-Proto", "http"),
             ("X-Forwarded-Host", "app.example")],
            {"X-Forwarded-For": f"1.2.3.4, 5.6.7.8, {PEER_TRUSTED}",
             "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example"},
            id="trusted-appended",
        ),
        pytest.param(
            PEER_TRUSTED,
            [("X-Forwarded-For", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8,9.9.9.9")],
            {"X-Forwarded-For": f"1.2.3.4, 5.6.7.8, 9.9.9.9, {PEER_TRUSTED}",
             "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"},
            id="trusted-several-lines-joined",
        ),
        pytest.param(
            PEER_TRUSTED,
            [],
            {"X-Forwarded-For": PEER_TRUSTED, "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "api.example"},
            id="trusted-nothing-received",
        ),
        pytest.param(
            "::1",
            [("X-Forwarded-For", "2001:db8::1")],
            {"X-Forwarded-For": "2001:db8::1, ::1", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "api.example"},
            id="trusted-ipv6",
        ),
        pytest.param(
            "::ffff:10.0.0.7",
            [("X-Forwarded-For", "1.2.3.4")],
            {"X-Forwarded-For": "1.2.3.4, 10.0.0.7", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "api.example"},
            id="trusted-mapped-written-as-ipv4",
        ),
        pytest.param(
            None,
            [("X-Forwarded-For", "1.2.3.4")],
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"},
            id="no-peer-unix-socket",
        ),
    ],
)  # fmt: skip
def test_x_forwarded_append_vs_replace(
    peer: str | None, received: list[tuple[str, str]], expected: dict[str, str]
) -> None:
    out = _forward(*received, peer=peer)
    forwarded = {k: v for k, v in out.items() if k.lower().startswith("x-forwarded-")}
    assert forwarded == expected
    for name in expected:
        assert len(out.getall(name)) == 1


def test_no_forwarded_host_without_a_host() -> None:
    out = _forward(peer=PEER_UNTRUSTED, host=None, scheme="http")
    assert "X-Forwarded-Host" not in out
    assert out["X-Forwarded-Proto"] == "http"


@pytest.mark.parametrize(
    "name", ["X-Forwarded-Port", "X-Forwarded-Prefix", "X-Real-IP", "Forwarded", "X_Forwarded_For"]
)
def test_other_forwarding_headers_only_from_trusted_peers(name: str) -> None:
    untrusted = _forward((name, "1.2.3.4"), peer=PEER_UNTRUSTED)
    assert name not in untrusted
    assert untrusted["X-Forwarded-For"] == PEER_UNTRUSTED

    trusted = _forward((name, "1.2.3.4"), peer=PEER_TRUSTED)
    if "_" in name:  # no trusted proxy writes that spelling: it can only be a spoof
        assert name not in trusted
        assert trusted["X-Forwarded-For"] == PEER_TRUSTED
    else:
        assert trusted[name].startswith("1.2.3.4")


@pytest.mark.parametrize(
    ("peer", "host", "expected"),
    [
        (PEER_TRUSTED, "api.example", "for=1.1.1.1, for=10.0.0.7;proto=https;host=api.example"),
        ("::1", "api.example", 'for=1.1.1.1, for="[::1]";proto=https;host=api.example'),
        (PEER_TRUSTED, "api.example:8443",
         'for=1.1.1.1, for=10.0.0.7;proto=https;host="api.example:8443"'),
        (PEER_TRUSTED, None, "for=1.1.1.1, for=10.0.0.7;proto=https"),
    ],
)  # fmt: skip
def test_forwarded_from_trusted_proxy_gets_our_hop(
    peer: str, host: str | None, expected: str
) -> None:
    out = _forward(("Forwarded", "for=1.1.1.1"), peer=peer, host=host)
    assert out.getall("Forwarded") == [expected]


# --- request ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("abc", True),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("0F8FAD5BD9CB469FA16570867728950E", True),
        ("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("trace.span_01:x-y", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        (None, False),
        ("has space", False),
        ("tab\there", False),
        ("line\nbreak", False),
        ("café", False),
        ("\uff11\uff12\uff13", False),  # full-width digits are not ASCII
        ("{0f8fad5b-d9cb-469f-a165-70867728950e}", False),
        ("a/b", False),
    ],
)
def test_valid_request_id(value: str | None, valid: bool) -> None:
    assert valid_request_id(value) is valid
    chosen = request_id_for(value)
    if valid:
        assert chosen == value
    else:
        assert chosen != value
        assert valid_request_id(chosen)


def test_new_request_ids_are_fresh_hex() -> None:
    first, second = new_request_id(), new_request_id()
    assert first != second
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert valid_request_id(first)


@pytest.mark.parametrize("sent", ["good-id", "bad id", "x" * 200])
def test_request_id_header_is_the_one_chosen(sent: str) -> None:
    out = _forward(("X-Request-Id", sent), ("x_request_id", "spoof"))
    assert out.getall("X-Request-Id") == [REQUEST_ID]
    assert "x_request_id" not in out


# --- WebSocket upgrades ----------------------------------------------------------------


WEBSOCKET_HANDSHAKE = (
    ("Connection", "keep-alive, Upgrade"),
    ("Upgrade", "websocket"),
    ("Keep-Alive", "timeout=5"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Protocol", "mqtt"),
)


def test_upgrade_kept_for_websockets() -> None:
    out = _forward(*WEBSOCKET_HANDSHAKE, keep_upgrade=True)
    assert out["Upgrade"] == "websocket"
    assert out.getall("Connection") == ["Upgrade"]
    assert out["Sec-WebSocket-Key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert out["Sec-WebSocket-Version"] == "13"
    assert out["Sec-WebSocket-Protocol"] == "mqtt"
    assert "Keep-Alive" not in out


def test_upgrade_dropped_otherwise() -> None:
    out = _forward(*WEBSOCKET_HANDSHAKE)
    assert "Upgrade" not in out
    assert "Connection" not in out
    assert "Keep-Alive" not in out


def test_upgrade_without_upgrade_header_adds_no_connection() -> None:
    out = _forward(("Connection", "Upgrade"), keep_upgrade=True)
    assert "Connection" not in out


# --- responses -------------------------------------------------------------------------


def test_response_headers() -> None:
    upstream = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Content-Type", "application/json"),
                ("Content-Length", "17"),
                ("Transfer-Encoding", "chunked"),
                ("Connection", "keep-alive, X-Internal"),
                ("Keep-Alive", "timeout=5"),
                ("X-Internal", "secret"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Content-Encoding", "gzip"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "X-Checksum"),
                ("ETag", '"v1"'),
            ]
        )
    )
    out = forwarded_response_headers(upstream)
    assert list(out.items()) == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Encoding", "gzip"),
        ("ETag", '"v1"'),
    ]


def test_plain_multidict_input_is_matched_case_insensitively() -> None:
    # A case-sensitive mapping must not let `CONNECTION` / `x-secret` slip through.
    incoming = MultiDict([("CONNECTION", "X-Secret"), ("x-secret", "s"), ("X-GATEWAY-ROLE", "a")])
    out = forwarded_request_headers(
        incoming, peer=None, scheme="https", host=None, trusted=TRUSTED, request_id=REQUEST_ID
    )
    assert list(out.keys()) == ["X-Forwarded-Proto", "X-Request-Id"]

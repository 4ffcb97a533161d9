"""CORS rules as tables: origin matching, preflights, ordinary responses, header merging."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.cors import (
    ALLOWED_METHODS,
    CorsPolicy,
    is_preflight,
    normalize_origin,
)

APP = "https://app.example.com"
METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD"
EXPOSED = "X-Request-Id, Warning, Retry-After"
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        (APP, APP),
        ("HTTPS://App.Example.COM", APP),
        ("https://app.example.com:443", APP),
        ("https://app.example.com:0443", APP),
        ("http://app.example.com:80", "http://app.example.com"),
        ("https://app.example.com:80", "https://app.example.com:80"),
        ("http://app.example.com:443", "http://app.example.com:443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://[::1]:80", "http://[::1]"),
        ("http://[::FFFF:7f00:1]", "http://[::ffff:7f00:1]"),
        ("wss://chat.example.com:443", "wss://chat.example.com"),
        ("chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop"),
        ("capacitor://localhost", "capacitor://localhost"),
        ("https://app.example.com:65535", "https://app.example.com:65535"),
        ("null", "null"),
        # Not origins: paths, userinfo, queries, wildcards, junk.
        ("https://app.example.com/", None),
        ("https://app.example.com/path", None),
        ("https://app.example.com?q=1", None),
        ("https://app.example.com#top", None),
        ("https://user@app.example.com", None),
        ("https://user:pw@app.example.com", None),
        ("https://*.example.com", None),
        ("https://app.example.com:", None),
        ("https://app.example.com:65536", None),
        ("https://app.example.com:123456", None),
        ("https://app.example.com:-1", None),
        ("app.example.com", None),
        ("//app.example.com", None),
        ("https://", None),
        ("https://:443", None),
        ("", None),
        ("*", None),
        ("NULL", None),
        (" https://app.example.com", None),
        ("https://app.example.com ", None),
        ("https://app.example.com\r\nSet-Cookie: x=1", None),
        ("https://app.exa mple.com", None),
        ("https://bücher.example", None),  # browsers send the punycode form
        ("https://" + "a" * 1100 + ".com", None),
    ],
)
def test_normalize_origin(value: str, normal: str | None) -> None:
    assert normalize_origin(value) == normal


@pytest.mark.parametrize(
    "entry",
    ["app.example.com", "https://app.example.com/", "https://*.example.com", "",
     "https://app.example.com/api", "**", "NULL"],
)
def test_bad_configured_origins_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        CorsPolicy((APP, entry))


def test_configured_origins_are_normalised_and_stripped() -> None:
    policy = CorsPolicy((" HTTPS://App.Example.com:443 ", "http://LOCALHOST:3000"))
    assert policy.allows(APP)
    assert policy.allows("http://localhost:3000")
    assert repr(policy) == "CorsPolicy(('http://localhost:3000', 'https://app.example.com'))"
    assert repr(CorsPolicy(("*",))) == "CorsPolicy(('*',))"


def test_negative_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age"):
        CorsPolicy((APP,), max_age=-1)


@pytest.mark.parametrize(
    ("configured", "enabled"),
    [((), False), ((APP,), True), (("*",), True), (("null",), True)],
)
def test_enabled(configured: tuple[str, ...], enabled: bool) -> None:
    assert CorsPolicy(configured).enabled is enabled


ALLOWS: list[tuple[tuple[str, ...], str | None, bool]] = [
    ((), APP, False),
    ((), None, False),
    ((APP,), APP, True),
    ((APP,), "https://APP.example.com:443", True),
    ((APP,), None, False),
    ((APP,), "", False),
    ((APP,), "http://app.example.com", False),  # scheme matters
    ((APP,), "https://app.example.com:8443", False),  # port matters
    ((APP,), "https://sub.app.example.com", False),  # no subdomains
    ((APP,), "https://example.com", False),
    ((APP,), "https://app.example.com.evil.test", False),  # no prefix match
    ((APP,), "https://evilapp.example.com", False),  # no suffix match
    ((APP,), "https://app.example.co", False),
    ((APP,), "https://app.example.com/", False),
    ((APP,), "null", False),
    ((APP,), "*", False),
    (("https://app.example.com:8443",), "https://app.example.com:8443", True),
    (("https://app.example.com:8443",), APP, False),
    (("http://localhost:3000",), "http://localhost:3000", True),
    (("http://localhost:3000",), "http://localhost:3001", False),
    (("http://localhost:3000",), "http://127.0.0.1:3000", False),
    (("*",), APP, True),
    (("*",), "http://localhost:5173", True),
    (("*",), "chrome-extension://abcdefghijklmnop", True),
    (("*",), "null", False),  # `*` never covers the opaque origin
    (("*",), "not an origin", False),
    (("*",), "https://app.example.com/path", False),
    (("*",), None, False),
    (("null",), "null", True),
    (("null",), APP, False),
    (("*", "null"), "null", True),
    ((APP, "*"), "https://other.example", True),
]


@pytest.mark.parametrize(("configured", "origin", "allowed"), ALLOWS)
def test_allows(configured: tuple[str, ...], origin: str | None, allowed: bool) -> None:
    assert CorsPolicy(configured).allows(origin) is allowed


def _preflight(
    origin: str, allow_headers: str | None = None, max_age: str = "600"
) -> dict[str, str]:
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": METHODS,
        "Access-Control-Max-Age": max_age,
        "Vary": PREFLIGHT_VARY,
    }
    if allow_headers is not None:
        headers["Access-Control-Allow-Headers"] = allow_headers
    return headers


Preflight = tuple[tuple[str, ...], str | None, str | None, str | None, dict[str, str] | None]
PREFLIGHTS: list[Preflight] = [
    # CORS off: never answered.
    ((), APP, "GET", None, None),
    ((), APP, "POST", "authorization", None),
    # A listed origin, each allowed method.
    *[((APP,), APP, method, None, _preflight(APP)) for method in ALLOWED_METHODS],
    # Methods are case-sensitive (browsers upper-case only the six safe names; "patch"
    # stays "patch" and fails there too) and only these seven.
    ((APP,), APP, "patch", None, None),
    ((APP,), APP, "get", None, None),
    ((APP,), APP, "TRACE", None, None),
    ((APP,), APP, "CONNECT", None, None),
    ((APP,), APP, "PROPFIND", None, None),
    ((APP,), APP, "", None, None),
    ((APP,), APP, None, None, None),
    # Requested headers: the allowed ones echoed as spelt, in order, once.
    ((APP,), APP, "POST", "authorization,content-type",
     _preflight(APP, "authorization, content-type")),
    ((APP,), APP, "POST", "Authorization, X-API-KEY, set-access-token-cookie, "
     "x-request-id, Content-Type",
     _preflight(APP, "Authorization, X-API-KEY, set-access-token-cookie, x-request-id, "
                "Content-Type")),
    ((APP,), APP, "GET", "authorization, x-custom", _preflight(APP, "authorization")),
    ((APP,), APP, "GET", "x-custom, x-gateway-user-id", _preflight(APP)),
    ((APP,), APP, "GET", "authorization, AUTHORIZATION", _preflight(APP, "authorization")),
    ((APP,), APP, "GET", "", _preflight(APP)),
    ((APP,), APP, "GET", " , ,", _preflight(APP)),
    ((APP,), APP, "GET", "  x-api-key  ", _preflight(APP, "x-api-key")),
    ((APP,), APP, "GET", "authorization x-api-key", _preflight(APP)),  # not a list
    # The origin as the browser sent it is echoed, not our normal form.
    ((APP,), "https://App.Example.com:443", "GET", None,
     _preflight("https://App.Example.com:443")),
    # Unlisted origins, and `null`, get nothing.
    ((APP,), "https://evil.test", "GET", "authorization", None),
    ((APP,), "null", "GET", None, None),
    ((APP,), None, "GET", None, None),
    # `*`: the request's origin echoed, with credentials; never for `null`.
    (("*",), "https://any.example:8443", "DELETE", "x-api-key",
     _preflight("https://any.example:8443", "x-api-key")),
    (("*",), "null", "GET", None, None),
    (("null",), "null", "GET", None, _preflight("null")),
]


@pytest.mark.parametrize(
    ("configured", "origin", "method", "requested", "expected"), PREFLIGHTS
)
def test_preflight_headers(
    configured: tuple[str, ...],
    origin: str | None,
    method: str | None,
    requested: str | None,
    expected: dict[str, str] | None,
) -> None:
    assert CorsPolicy(configured).preflight_headers(origin, method, requested) == expected


def test_preflight_max_age_and_headers_are_configurable() -> None:
    policy = CorsPolicy((APP,), max_age=0, allow_headers=("Authorization", "X-Device-Id"))
    assert policy.preflight_headers(APP, "GET", "x-device-id, x-api-key") == _preflight(
        APP, "x-device-id", max_age="0"
    )


def test_never_a_literal_star_even_with_star_configured() -> None:
    policy = CorsPolicy(("*",))
    for headers in (
        policy.preflight_headers("https://a.example", "GET", None),
        policy.response_headers("https://a.example"),
    ):
        assert headers is not None
        assert headers["Access-Control-Allow-Origin"] == "https://a.example"
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert "Origin" in headers["Vary"]


def _response(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED,
        "Vary": "Origin",
    }


RESPONSES: list[tuple[tuple[str, ...], str | None, dict[str, str]]] = [
    ((), APP, {}),
    ((), None, {}),
    ((APP,), APP, _response(APP)),
    ((APP,), "https://app.example.com:443", _response("https://app.example.com:443")),
    ((APP,), "https://evil.test", {"Vary": "Origin"}),
    ((APP,), "null", {"Vary": "Origin"}),
    ((APP,), None, {"Vary": "Origin"}),  # caches must not serve this to an allowed origin
    (("*",), "http://localhost:5173", _response("http://localhost:5173")),
    (("*",), "null", {"Vary": "Origin"}),
    (("null",), "null", _response("null")),
]


@pytest.mark.parametrize(("configured", "origin", "expected"), RESPONSES)
def test_response_headers(
    configured: tuple[str, ...], origin: str | None, expected: dict[str, str]
) -> None:
    assert CorsPolicy(configured).response_headers(origin) == expected


def test_expose_headers_can_be_emptied() -> None:
    headers = CorsPolicy((APP,), expose_headers=()).response_headers(APP)
    assert "Access-Control-Expose-Headers" not in headers


APPLY: list[tuple[tuple[str, ...], str | None, list[tuple[str, str]], list[tuple[str, str]]]] = [
    # CORS off: the upstream's headers, its own CORS ones included, pass untouched.
    ((), APP,
     [("Access-Control-Allow-Origin", "*"), ("Vary", "Accept-Encoding")],
     [("Access-Control-Allow-Origin", "*"), ("Vary", "Accept-Encoding")]),
    # CORS on: the upstream's Access-Control-* go, ours come, Vary is merged.
    ((APP,), APP,
     [("Content-Type", "application/json"), ("access-control-allow-origin", "*"),
      ("Access-Control-Allow-Methods", "GET"), ("Access-Control-Allow-Origin", "https://x"),
      ("Vary", "Accept-Encoding")],
     [("Content-Type", "application/json"),
      ("Access-Control-Allow-Origin", APP), ("Access-Control-Allow-Credentials", "true"),
      ("Access-Control-Expose-Headers", EXPOSED), ("Vary", "Accept-Encoding, Origin")]),
    ((APP,), APP, [("Vary", "Accept-Encoding"), ("vary", "Cookie")],
     [("Access-Control-Allow-Origin", APP), ("Access-Control-Allow-Credentials", "true"),
      ("Access-Control-Expose-Headers", EXPOSED), ("Vary", "Accept-Encoding, Cookie, Origin")]),
    ((APP,), APP, [("Vary", "accept-encoding, ORIGIN")],
     [("Vary", "accept-encoding, ORIGIN"), ("Access-Control-Allow-Origin", APP),
      ("Access-Control-Allow-Credentials", "true"), ("Access-Control-Expose-Headers", EXPOSED)]),
    ((APP,), APP, [("Vary", "*")],
     [("Vary", "*"), ("Access-Control-Allow-Origin", APP),
      ("Access-Control-Allow-Credentials", "true"), ("Access-Control-Expose-Headers", EXPOSED)]),
    # Unlisted or absent origin: the upstream's CORS headers still go; only Vary is added.
    ((APP,), "https://evil.test",
     [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")],
     [("Vary", "Origin")]),
    ((APP,), None, [("X-Request-Id", "r1")], [("X-Request-Id", "r1"), ("Vary", "Origin")]),
]


@pytest.mark.parametrize(("configured", "origin", "before", "after"), APPLY)
def test_apply(
    configured: tuple[str, ...],
    origin: str | None,
    before: list[tuple[str, str]],
    after: list[tuple[str, str]],
) -> None:
    headers: CIMultiDict[str] = CIMultiDict(before)
    CorsPolicy(configured).apply(headers, origin)
    assert sorted((k.lower(), v) for k, v in headers.items()) == sorted(
        (k.lower(), v) for k, v in after
    )


@pytest.mark.parametrize(
    ("method", "origin", "request_method", "preflight"),
    [
        ("OPTIONS", APP, "POST", True),
        ("OPTIONS", "null", "GET", True),  # a preflight, even if we will not allow it
        ("OPTIONS", APP, None, False),  # a plain OPTIONS from a page
        ("OPTIONS", None, "POST", False),
        ("GET", APP, "POST", False),
        ("options", APP, "POST", False),  # methods are case-sensitive
    ],
)
def test_is_preflight(
    method: str, origin: str | None, request_method: str | None, preflight: bool
) -> None:
    assert is_preflight(method, origin, request_method) is preflight


@settings(max_examples=300, deadline=None, database=None)
@given(
    origin=st.text(max_size=80)
    | st.from_regex(r"\A[a-zA-Z]{2,8}://[a-zA-Z0-9.-]{1,20}(:[0-9]{1,6})?/?\Z")
)
def test_any_origin_string_is_safe_to_echo(origin: str) -> None:
    headers = CorsPolicy(("*",)).response_headers(origin)
    if "Access-Control-Allow-Origin" in headers:
        assert headers["Access-Control-Allow-Origin"] == origin
        assert origin.isascii() and origin.isprintable() and " " not in origin
        assert normalize_origin(origin) is not None
    else:
        assert headers == {"Vary": "Origin"}

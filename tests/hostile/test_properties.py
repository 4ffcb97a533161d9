"""Property-based tests (hypothesis) of the three pure pieces hostile input goes through
first: the token verifier, the header filter, the policy matcher (and path normalisation).

Example counts are bounded so the module stays a few seconds long.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import string
import time
from typing import Any, cast
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.auth.keyring import KeyRing, SigningKey
from gateway.auth.state import AuthState
from gateway.auth.tokens import ISSUER, KINDS, Claims, TokenService, bearer_token
from gateway.errors import GatewayError
from gateway.policy import Auth, Rule, UnsafePath, compile_rules, normalize_path
from gateway.proxy.headers import (
    HOP_BY_HOP,
    TrustedProxies,
    forwarded_request_headers,
    forwarded_response_headers,
)
from tests.hostile.catalogue import es256

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=100, deadline=None,
               suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------
# The token verifier: whatever it is given, it answers with claims or the gateway's own
# 401 ("Invalid token" / "token expired"); nothing else ever escapes it.

KID = "k1"
KEY = ec.generate_private_key(ec.SECP256R1())
NOW = time.time()


def _service() -> TokenService:
    ring = KeyRing(cast(Any, None), cast(Any, None), "ES256")
    key = SigningKey(kid=KID, algorithm="ES256", public_key=KEY.public_key(), private_key=KEY,
                     created_at=NOW - 10, retired_at=None, max_exp=NOW + 86400)
    ring._keys = {KID: key}
    ring._signer = key
    return TokenService(ring, AuthState(), cast(Any, None), algorithms=("ES256",), leeway=30)


def verify(token: str) -> Claims | GatewayError:
    service = _service()  # a fresh cache each time: the decode path runs on every example
    try:
        return asyncio.run(service.verify(token))
    except GatewayError as exc:
        return exc


def assert_gateway_answer(result: Claims | GatewayError) -> None:
    if isinstance(result, GatewayError):
        assert (result.status, result.message) in ((401, "Invalid token"),
                                                   (401, "token expired")), result
        return
    assert result.kind in KINDS and result.sub and result.nid and result.jti
    assert math.isfinite(result.exp) and math.isfinite(result.iat)
    assert result.kind == "access" or result.role


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.integers(min_value=10**300, max_value=10**400),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8,
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity as JSON's non-standard literals


VALID_HEADER = {"alg": "ES256", "kid": KID, "typ": "JWT"}
VALID_CLAIMS = {"iss": ISSUER, "sub": "alice", "iat": int(NOW), "exp": int(NOW) + 600,
                "jti": "j1", "nid": "n1", "kind": "access", "did": "d1"}
header_values = {
    "alg": st.sampled_from(["ES256", "none", "None", "HS256", "RS256", "es256", ""])
    | json_values,
    "kid": st.sampled_from([KID, "k2", "../k1", ""]) | json_values,
    "typ": st.sampled_from(["JWT", "jwt"]) | json_values,
    "crit": json_values, "jku": st.just("http://127.0.0.1:9/"), "jwk": json_values,
}
claim_values = {
    "iss": st.sampled_from([ISSUER, "evil"]) | json_values,
    "sub": st.sampled_from(["alice", "", "x" * 300]) | json_values,
    "iat": st.sampled_from([int(NOW), float("nan"), float("inf")]) | json_values,
    "exp": st.sampled_from([int(NOW) + 600, int(NOW) - 600, float("inf"), float("nan"),
                            10**400, -(10**400), 1e308]) | json_values,
    "jti": st.sampled_from(["j1"]) | json_values,
    "nid": st.sampled_from(["n1"]) | json_values,
    "kind": st.sampled_from(["access", "admin", "refresh"]) | json_values,
    "did": st.sampled_from(["d1"]) | json_values,
    "role": st.sampled_from(["admin", "super-admin", ""]) | json_values,
    "nbf": json_values,
}


@st.composite
def edited(draw: st.DrawFn, base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`base` with a few entries changed to anything, or removed: mostly valid, so that
    acceptance is common and what is accepted can be checked."""
    result = dict(base)
    for key in draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True)):
        if key in result and draw(st.integers(0, 4)) == 0:
            del result[key]
        else:
            result[key] = draw(values[key])
    return result


headers = edited(VALID_HEADER, header_values)
claims = edited(VALID_CLAIMS, claim_values)


def _signed(header: Any, payload: Any) -> str:
    head, body = b64(_json_bytes(header)), b64(_json_bytes(payload))
    return f"{head}.{body}.{b64(es256(KEY, f'{head}.{body}'.encode()))}"


VALID = _signed(VALID_HEADER, VALID_CLAIMS)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The valid token with a character changed, inserted or removed, or cut short."""
    chars = list(VALID)
    at = draw(st.integers(0, len(chars) - 1))
    how = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
    new = draw(st.sampled_from(string.ascii_letters + string.digits + "-_.=+/ \x00é"))
    if how == "replace":
        chars[at] = new if new != chars[at] else "A" if chars[at] != "A" else "B"
    elif how == "insert":
        chars.insert(at, new)
    elif how == "delete":
        del chars[at]
    else:
        chars = chars[:at]
    return "".join(chars)


jwt_shaped = st.builds(
    lambda parts: ".".join(parts),
    st.lists(st.one_of(st.binary(max_size=40).map(b64), json_values.map(_json_bytes).map(b64),
                       headers.map(_json_bytes).map(b64), st.text(max_size=10)),
             min_size=0, max_size=5),
)


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
       | jwt_shaped | mutated())
def test_garbage_is_never_accepted(token: str) -> None:
    result = verify(token)
    assert isinstance(result, GatewayError), f"accepted {token!r}"
    assert (result.status, result.message) == (401, "Invalid token")


@FAST
@given(headers, claims)
def test_signed_tokens_with_any_header_and_claims(header: dict[str, Any],
                                                  payload: dict[str, Any]) -> None:
    """Signed with the real key, whatever the header and claims say: claims that make
    sense, or the gateway's 401."""
    result = verify(_signed(header, payload))
    assert_gateway_answer(result)
    if not isinstance(result, GatewayError):
        assert header.get("alg") == "ES256" and header.get("kid") == KID, header
        assert set(header) <= {"alg", "kid", "typ"}, header


@FEW
@given(st.text(max_size=100))
def test_bearer_token_parsing_never_raises(value: str) -> None:
    token = bearer_token(value)
    assert token is None or (token and token == token.strip())


def test_the_valid_token_is_valid() -> None:
    """The generators' base case, so that the properties above are not vacuous."""
    result = verify(VALID)
    assert isinstance(result, Claims) and result.sub == "alice"
    assert jwt.get_unverified_header(VALID)["kid"] == KID


# --------------------------------------------------------------------------------------
# The header filter: hop-by-hop headers, the ones named in Connection, and X-Gateway-* never
# cross, whatever their case or the whitespace in the Connection list.

SET_BY_GATEWAY = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
                  "content-length"}
NAMES = sorted(HOP_BY_HOP | {
    "x-gateway-user-id", "x-gateway-role", "x-gateway-network-id", "x_gateway_user_id",
    "X-Gateway-Anything", "x-forwarded-for", "x-forwarded-host", "forwarded", "x-real-ip",
    "host", "expect", "content-length", "x-request-id", "authorization", "x-custom",
    "x-secret", "accept", "sec-websocket-key", "cookie"})
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


@st.composite
def header_name(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES) | st.text(TOKEN_CHARS, min_size=1, max_size=12))
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)


header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
space = st.sampled_from(["", " ", "  ", "\t", " \t "])


@st.composite
def connection_value(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(header_name() | st.sampled_from(["close", "keep-alive", "upgrade"]),
                           max_size=4))
    return ",".join(f"{draw(space)}{token}{draw(space)}" for token in tokens) + draw(
        st.sampled_from(["", ",", ", ,"]))


@st.composite
def incoming_headers(draw: st.DrawFn) -> CIMultiDict[str]:
    pairs = draw(st.lists(st.tuples(header_name(), header_value), max_size=12))
    for _ in range(draw(st.integers(0, 2))):
        name = "".join(c.upper() if draw(st.booleans()) else c for c in "connection")
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(connection_value())))
    return CIMultiDict(pairs)


def _named_in_connection(headers: CIMultiDict[str]) -> set[str]:
    return {token.strip().lower() for value in headers.getall("Connection", [])
            for token in value.split(",") if token.strip()}


TRUSTED = TrustedProxies(["10.0.0.0/8"])


@FAST
@given(incoming_headers(), st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", None]))
def test_request_headers_never_carry_hop_by_hop_or_gateway_headers(
    incoming: CIMultiDict[str], peer: str | None
) -> None:
    out = forwarded_request_headers(incoming, peer=peer, scheme="https", host="gw.example",
                                    trusted=TRUSTED, request_id="rid-1")
    named = _named_in_connection(incoming)
    for name in out:
        key = name.lower()
        assert key not in HOP_BY_HOP, name
        assert not key.replace("_", "-").startswith("x-gateway-"), name
        assert key not in named or key in SET_BY_GATEWAY, (name, named)
        assert key not in ("host", "expect"), name
    assert out["X-Request-Id"] == "rid-1"
    if peer != "10.1.2.3":  # not a trusted proxy: the client's forwarding headers are gone
        assert out.get("X-Forwarded-Proto") == "https"
        assert out.get("X-Forwarded-Host") == "gw.example"
        assert "Forwarded" not in out and "X-Real-Ip" not in out
        assert out.get("X-Forwarded-For") == (None if peer is None else peer)


@FEW
@given(incoming_headers())
def test_upgrade_requests_keep_only_the_upgrade_hop(incoming: CIMultiDict[str]) -> None:
    out = forwarded_request_headers(incoming, peer="127.0.0.1", scheme="http", host=None,
                                    trusted=TRUSTED, request_id="rid-1", keep_upgrade=True)
    for name in out:
        key = name.lower()
        assert key not in HOP_BY_HOP or key in ("upgrade", "connection"), name
        assert not key.replace("_", "-").startswith("x-gateway-"), name
    if "Connection" in out:
        assert out.getall("Connection") == ["Upgrade"]


@FEW
@given(incoming_headers())
def test_response_headers_never_carry_hop_by_hop_headers(upstream: CIMultiDict[str]) -> None:
    out = forwarded_response_headers(upstream)
    named = _named_in_connection(upstream)
    for name in out:
        key = name.lower()
        assert key not in HOP_BY_HOP and key not in named, name
        assert key not in ("content-length", "transfer-encoding"), name


# --------------------------------------------------------------------------------------
# The policy matcher agrees with a plain recursive reading of `*` and `**`.

SEGMENTS = ["a", "b", "c", "a!", "a%21", "%7E", "~"]


def _decode(segment: str) -> str:
    return unquote(segment, errors="surrogateescape")


def reference_match(pattern: list[str], path: list[str]) -> bool:
    """`*` is exactly one segment, `**` zero or more; literals compare decoded."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(reference_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return (head == "*" or _decode(head) == path[0]) and reference_match(rest, path[1:])


def reference_pick(rules: list[Rule], method: str, host: str | None, path: str) -> Rule | None:
    segments = [_decode(s) for s in path.split("/") if s]
    for rule in rules:
        pattern = [s for s in rule.path.split("/") if s]
        if not reference_match(pattern, segments):
            continue
        if rule.methods is not None and method.upper() not in rule.methods:
            continue
        if rule.hosts is not None and (
                host is None or host.lower().split(":")[0] not in rule.hosts):
            continue
        return rule
    return None


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    rules = []
    for index in range(draw(st.integers(1, 6))):
        segments = draw(st.lists(st.sampled_from([*SEGMENTS, "*", "**"]), max_size=4))
        methods = draw(st.none() | st.sets(st.sampled_from(["GET", "POST", "DELETE"]),
                                           min_size=1))
        hosts = draw(st.none() | st.just(frozenset({"api.example"})))
        rules.append(Rule(name=f"r{index}", path="/" + "/".join(segments), auth=Auth.PUBLIC,
                          methods=frozenset(methods) if methods else None, hosts=hosts,
                          index=index))
    return rules


@st.composite
def request_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from([*SEGMENTS, "", "x"]), max_size=6))
    return "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))


@FAST
@given(rule_sets(), request_paths(), st.sampled_from(["GET", "post", "DELETE", "PUT"]),
       st.sampled_from(["api.example", "API.Example:443", "other.example", None]))
def test_matcher_agrees_with_the_reference(rules: list[Rule], path: str, method: str,
                                           host: str | None) -> None:
    assert compile_rules(rules).match(method, host, path) is reference_pick(
        rules, method, host, path)


# --------------------------------------------------------------------------------------
# Path normalisation: a fixed point, and never a dot segment however it was spelled.

PATH_PIECES = ["a", "b", ".", "..", "%2e", "%2E%2e", "%2f", "%5c", "%00", "%25", "%252e",
               "%c0%ae", "%e0%80%ae", "%41", "%7e", "%zz", "%", "é", " ", "\\", "?", "#",
               ";", "..;x", "~", "*", "%0a", "\x7f"]


@FAST
@given(st.lists(st.sampled_from(PATH_PIECES) | st.text(max_size=3), max_size=6),
       st.lists(st.sampled_from(["/", "//", ""]), min_size=6, max_size=6))
def test_normalized_paths_are_fixed_points_without_dot_segments(
    pieces: list[str], separators: list[str]
) -> None:
    raw = "/" + "".join(piece + sep for piece, sep in zip(pieces, separators, strict=False))
    try:
        path = normalize_path(raw)
    except UnsafePath:
        return
    assert normalize_path(path) == path
    assert path.startswith("/") and "//" not in path
    for segment in path.split("/"):
        decoded = _decode(segment)
        assert decoded.split(";")[0] not in (".", ".."), (raw, path)
        assert "/" not in decoded and "\\" not in decoded and "\x00" not in decoded, (raw, path)
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded), (raw, path)

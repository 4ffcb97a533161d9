"""The hostile-input catalogue: one `Case` per attack, as data.

A case builds the raw bytes of one request from the `Ctx` (the seeded tokens and keys) and
says what the gateway must answer. Unless a case says otherwise, the answer is one 4xx
error in the contract's shape (`{"status": "error", "code", "message"}`), JSON, no stack
trace, nothing forwarded to the upstream and nothing changed in the store; `close_ok` also
admits a silent close (shapes the HTTP parser may refuse without a word), and `verbatim`
cases may instead be forwarded, provided the upstream receives the request target exactly
as `target` says and none of the `smuggled` header names.

Categories: jwt, smuggling, headers, limits, paths, params, json, csr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from gateway.auth.ecdsa import ORDERS, to_low_s
from tests.hostile.harness import Seeded, http

INVALID = "Invalid token"
API = "/api/v3/x"  # any path under /api/** needs a token (any_token)
SESSIONS = "/api/v3/sessions"
CERTIFICATES = "/api/v3/networks/certificates"


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    request: Callable[[Ctx], bytes]
    status: int | None = None  # None: any 4xx
    message: str | None = None  # the exact message
    contains: str | None = None  # a part of the message
    code: int | None = None  # None: the contract's code for the status
    close_ok: bool = False  # a silent close is an answer too
    verbatim: bytes | None = None  # may be forwarded, with exactly this request target
    smuggled: tuple[str, ...] = ()  # header names that must never reach the upstream
    needs: tuple[str, str] | None = None  # (method, path) of a route that must exist

    @property
    def strict(self) -> bool:
        """Answered by a 4xx error or a close, whatever the gateway does."""
        return self.verbatim is None


# --------------------------------------------------------------------------------------
# The context cases build their requests from


@dataclass
class Ctx:
    seeded: Seeded
    jwks: dict[str, Any]
    attacker: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def kid(self) -> str:
        return self.seeded.kid

    @property
    def token(self) -> str:
        return self.seeded.access_token

    @property
    def header(self) -> dict[str, Any]:
        return dict(jwt.get_unverified_header(self.token))

    @property
    def claims(self) -> dict[str, Any]:
        return dict(jwt.decode(self.token, options={"verify_signature": False}))

    @cached_property
    def public_pem(self) -> bytes:
        """The signing key's public half, as published in /.well-known/jwks.json."""
        (jwk,) = [k for k in self.jwks["keys"] if k["kid"] == self.kid]
        key = jwt.PyJWK(jwk).key
        return bytes(key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))

    @cached_property
    def public_jwk(self) -> str:
        (jwk,) = [k for k in self.jwks["keys"] if k["kid"] == self.kid]
        return json.dumps(jwk)

    def signed(self, header: Any, payload: Any, key: Any = None) -> str:
        """A JWS over exactly these header and payload (objects, or raw bytes), ES256 with
        the gateway's own key unless `key` says otherwise: the one defect is the case's."""
        head, body = _part(header), _part(payload)
        signature = es256(key or self.seeded.private_key, f"{head}.{body}".encode())
        return f"{head}.{body}.{b64(signature)}"

    def hs(self, header: Any, payload: Any, secret: bytes, digest: str = "sha256") -> str:
        head, body = _part(header), _part(payload)
        mac = hmac.new(secret, f"{head}.{body}".encode(), getattr(hashlib, digest)).digest()
        return f"{head}.{body}.{b64(mac)}"

    def unsigned(self, header: Any, payload: Any, signature: str = "") -> str:
        return f"{_part(header)}.{_part(payload)}.{signature}"

    def with_claims(self, **changes: Any) -> dict[str, Any]:
        return {**self.claims, **changes}

    def raw_claims(self, tail: str) -> bytes:
        """The valid claims' JSON text with `tail` added inside the object (duplicates)."""
        return (json.dumps(self.claims)[:-1] + ", " + tail + "}").encode()

    @cached_property
    def csr_pem(self) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
        ).sign(key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    @cached_property
    def certificate_pem(self) -> str:
        import datetime

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a csr")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    @cached_property
    def key_pem(self) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    def tampered_csr(self) -> str:
        der = bytearray(x509.load_pem_x509_csr(self.csr_pem.encode()).public_bytes(
            serialization.Encoding.DER))
        der[-5] ^= 0x55  # inside the signature: well-formed, wrongly signed
        return _pem("CERTIFICATE REQUEST", bytes(der))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _part(value: Any) -> str:
    return b64(value if isinstance(value, bytes) else json.dumps(value).encode())


def _pem(label: str, der: bytes) -> str:
    text = base64.b64encode(der).decode()
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """Low-S, as the gateway signs: otherwise half the cases would be refused for that."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return to_low_s("ES256", r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def bearer(token: str, path: str = API) -> bytes:
    return http("GET", path, [("Authorization", f"Bearer {token}")])


def _raw(data: bytes) -> Callable[[Ctx], bytes]:
    """A request that is exactly these bytes."""
    return lambda c: data


def _get(target: str, headers: list[tuple[str, str]] | None = None) -> Callable[[Ctx], bytes]:
    return lambda c: http("GET", target, headers)


def _user_get(target: str) -> Callable[[Ctx], bytes]:
    """A GET of `target` with the seeded end user's access token."""
    return lambda c: http("GET", target, [("Authorization", f"Bearer {c.token}")])


# --------------------------------------------------------------------------------------
# JWT attacks: sent as `Authorization: Bearer` to a route that needs a token.

TokenMaker = Callable[[Ctx], str]


def _bearer(make: TokenMaker) -> Callable[[Ctx], bytes]:
    return lambda c: bearer(make(c))


def _segments(c: Ctx) -> list[str]:
    return c.token.split(".")


def _other_gateway(c: Ctx) -> str:
    other = ec.generate_private_key(ec.SECP256R1())
    return c.signed({"alg": "ES256", "kid": "0123456789abcdef", "typ": "JWT"}, c.claims, other)


def _spliced(c: Ctx) -> str:
    head, body, _ = _segments(c)
    return f"{head}.{body}.{c.seeded.admin_token.split('.')[2]}"


def _escalated(c: Ctx) -> str:
    head, _, sig = _segments(c)
    elevated = c.with_claims(sub="root", kind="admin", role="super-admin")
    return f"{head}.{_part(elevated)}.{sig}"


def _der_signature(c: Ctx) -> str:
    head, body, _ = _segments(c)
    der = c.seeded.private_key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    return f"{head}.{body}.{b64(der)}"


def _high_s_twin(c: Ctx) -> str:
    """The valid token under the other valid ECDSA signature, (r, n - s)."""
    head, body, signature = _segments(c)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    s = ORDERS["ES256"] - int.from_bytes(raw[32:], "big")
    return f"{head}.{body}.{b64(raw[:32] + s.to_bytes(32, 'big'))}"


def _admin_living(c: Ctx, seconds: int) -> str:
    """The seeded admin token re-signed to live `seconds` from its iat."""
    claims = jwt.decode(c.seeded.admin_token, options={"verify_signature": False})
    return c.signed(jwt.get_unverified_header(c.seeded.admin_token),
                    {**claims, "exp": claims["iat"] + seconds})


def _standard_base64(c: Ctx) -> str:
    return ".".join(base64.b64encode(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))).decode()
                    for p in _segments(c))


BAD_UTF8_HEADER = b'{"alg\xff": "ES256"}'

JWT_TOKENS: list[tuple[str, TokenMaker]] = [
    # alg: none in every spelling, and with a signature left on
    ("alg-none", lambda c: c.unsigned({"alg": "none", "kid": c.kid}, c.claims)),
    ("alg-None", lambda c: c.unsigned({"alg": "None", "kid": c.kid}, c.claims)),
    ("alg-NONE", lambda c: c.unsigned({"alg": "NONE", "kid": c.kid}, c.claims)),
    ("alg-nOnE", lambda c: c.unsigned({"alg": "nOnE", "kid": c.kid}, c.claims)),
    ("alg-none-no-kid", lambda c: c.unsigned({"alg": "none"}, c.claims)),
    ("alg-none-with-signature",
     lambda c: c.unsigned({"alg": "none", "kid": c.kid}, c.claims, _segments(c)[2])),
    # key confusion: HMAC keyed with the public key, as published in the JWKS
    ("hs256-public-pem", lambda c: c.hs({"alg": "HS256", "kid": c.kid}, c.claims, c.public_pem)),
    ("hs256-public-pem-stripped", lambda c: c.hs(
        {"alg": "HS256", "kid": c.kid}, c.claims, c.public_pem.strip())),
    ("hs256-jwk-json", lambda c: c.hs(
        {"alg": "HS256", "kid": c.kid}, c.claims, c.public_jwk.encode())),
    ("hs512-public-pem", lambda c: c.hs(
        {"alg": "HS512", "kid": c.kid}, c.claims, c.public_pem, "sha512")),
    ("hs256-empty-secret", lambda c: c.hs({"alg": "HS256", "kid": c.kid}, c.claims, b"")),
    # alg the key does not have, or none at all; signed with the real key all the same
    ("alg-rs256-header", lambda c: c.signed({"alg": "RS256", "kid": c.kid}, c.claims)),
    ("alg-es384-header", lambda c: c.signed({"alg": "ES384", "kid": c.kid}, c.claims)),
    ("alg-lowercase", lambda c: c.signed({"alg": "es256", "kid": c.kid}, c.claims)),
    ("alg-missing", lambda c: c.signed({"kid": c.kid}, c.claims)),
    ("alg-list", lambda c: c.signed({"alg": ["ES256"], "kid": c.kid}, c.claims)),
    ("alg-null", lambda c: c.signed({"alg": None, "kid": c.kid}, c.claims)),
    # kid: path traversal, SQL, odd types; signed by an attacker's key
    ("kid-path-traversal", lambda c: c.signed(
        {"alg": "ES256", "kid": "../../../../../../etc/passwd"}, c.claims, c.attacker)),
    ("kid-dev-null-hs256", lambda c: c.hs({"alg": "HS256", "kid": "/dev/null"}, c.claims, b"")),
    ("kid-traversal-to-kek", lambda c: c.hs(
        {"alg": "HS256", "kid": "../certs/keys/kek.key"}, c.claims, b"")),
    ("kid-sql-or", lambda c: c.signed(
        {"alg": "ES256", "kid": "' OR '1'='1"}, c.claims, c.attacker)),
    ("kid-sql-union", lambda c: c.signed(
        {"alg": "ES256", "kid": "x' UNION SELECT public_pem FROM signing_keys --"},
        c.claims, c.attacker)),
    ("kid-sql-sleep", lambda c: c.signed(
        {"alg": "ES256", "kid": "1; SELECT pg_sleep(10) --"}, c.claims, c.attacker)),
    ("kid-nul", lambda c: c.signed({"alg": "ES256", "kid": c.kid + "\u0000"}, c.claims)),
    ("kid-int", lambda c: c.signed({"alg": "ES256", "kid": 1}, c.claims)),
    ("kid-object", lambda c: c.signed({"alg": "ES256", "kid": {"$ne": None}}, c.claims)),
    ("kid-list", lambda c: c.signed({"alg": "ES256", "kid": [c.kid]}, c.claims)),
    ("kid-missing", lambda c: c.signed({"alg": "ES256"}, c.claims)),
    ("kid-empty", lambda c: c.signed({"alg": "ES256", "kid": ""}, c.claims)),
    ("kid-huge", lambda c: c.signed({"alg": "ES256", "kid": "k" * 3000}, c.claims)),
    # headers that name a key or change the rules: never honoured
    ("jku-header", lambda c: c.signed(
        {**c.header, "jku": "http://127.0.0.1:9/jwks.json"}, c.claims)),
    ("x5u-header", lambda c: c.signed({**c.header, "x5u": "http://127.0.0.1:9/c.pem"}, c.claims)),
    ("x5c-header", lambda c: c.signed({**c.header, "x5c": ["MIIB"]}, c.claims)),
    ("jwk-embedded-attacker-key", lambda c: c.signed(
        {"alg": "ES256", "kid": "attacker", "jwk": json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(c.attacker.public_key()))},
        c.claims, c.attacker)),
    ("jwk-embedded-real-kid", lambda c: c.signed(
        {"alg": "ES256", "kid": c.kid, "jwk": json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(c.attacker.public_key()))},
        c.claims, c.attacker)),
    ("crit-exp", lambda c: c.signed({**c.header, "crit": ["exp"]}, c.claims)),
    ("crit-b64-false", lambda c: c.signed({**c.header, "crit": ["b64"], "b64": False}, c.claims)),
    ("cty-jwt-nested", lambda c: c.signed({**c.header, "cty": "JWT"}, c.token.encode())),
    # payloads that are not a claims object
    ("nested-jwt-payload", lambda c: c.signed(c.header, c.token)),
    ("payload-array", lambda c: c.signed(c.header, [c.claims])),
    ("payload-not-json", lambda c: c.signed(c.header, b"hello")),
    ("payload-invalid-utf8", lambda c: c.signed(c.header, b'{"sub": "\xff\xfe"}')),
    ("payload-empty-object", lambda c: c.signed(c.header, {})),
    # huge claims
    ("huge-claim-over-size-limit", lambda c: c.signed(c.header, c.with_claims(pad="x" * 5000))),
    ("sub-over-length-limit", lambda c: c.signed(c.header, c.with_claims(sub="s" * 300))),
    # duplicate names in the JSON
    ("duplicate-claim-kind", lambda c: c.signed(c.header, c.raw_claims('"kind": "refresh"'))),
    ("duplicate-claim-sub-attacker-signed", lambda c: c.signed(
        c.header, c.raw_claims('"sub": "root"'), c.attacker)),
    ("duplicate-claim-exp-string", lambda c: c.signed(c.header, c.raw_claims('"exp": "never"'))),
    ("duplicate-header-alg-none-last", lambda c: c.unsigned(
        f'{{"alg": "ES256", "kid": "{c.kid}", "alg": "none"}}'.encode(), c.claims)),
    ("duplicate-header-alg-es256-last", lambda c: c.signed(
        f'{{"alg": "none", "kid": "{c.kid}", "alg": "ES256"}}'.encode(), c.claims, c.attacker)),
    # claims of the wrong type or value, correctly signed
    ("exp-string", lambda c: c.signed(c.header, c.with_claims(exp="tomorrow"))),
    ("exp-bool", lambda c: c.signed(c.header, c.with_claims(exp=True))),
    ("exp-null", lambda c: c.signed(c.header, c.with_claims(exp=None))),
    ("exp-list", lambda c: c.signed(c.header, c.with_claims(exp=[4102444800]))),
    ("exp-nan", lambda c: c.signed(c.header, c.raw_claims('"exp": NaN'))),
    ("exp-infinity", lambda c: c.signed(c.header, c.raw_claims('"exp": Infinity'))),
    ("exp-1e999", lambda c: c.signed(c.header, c.raw_claims('"exp": 1e999'))),
    ("exp-huge-integer", lambda c: c.signed(c.header, c.raw_claims('"exp": 1' + "0" * 400))),
    ("iat-huge-integer", lambda c: c.signed(c.header, c.raw_claims('"iat": 1' + "0" * 400))),
    ("iat-string", lambda c: c.signed(c.header, c.with_claims(iat="now"))),
    ("iat-nan", lambda c: c.signed(c.header, c.raw_claims('"iat": NaN'))),
    ("nbf-far-future", lambda c: c.signed(c.header, c.with_claims(nbf=4102444800))),
    ("kind-refresh", lambda c: c.signed(c.header, c.with_claims(kind="refresh"))),
    ("kind-admin-without-role", lambda c: c.signed(c.header, c.with_claims(kind="admin"))),
    ("kind-missing", lambda c: c.signed(
        c.header, {k: v for k, v in c.claims.items() if k != "kind"})),
    ("iss-other", lambda c: c.signed(c.header, c.with_claims(iss="evil"))),
    ("sub-int", lambda c: c.signed(c.header, c.with_claims(sub=42))),
    ("sub-empty", lambda c: c.signed(c.header, c.with_claims(sub=""))),
    ("nid-object", lambda c: c.signed(c.header, c.with_claims(nid={"$ne": None}))),
    ("jti-list", lambda c: c.signed(c.header, c.with_claims(jti=["a"]))),
    # broken encodings
    ("truncated-one-char", lambda c: c.token[:-1]),
    ("truncated-half", lambda c: c.token[: len(c.token) // 2]),
    ("header-segment-truncated", lambda c: ".".join(
        [_segments(c)[0][:-3], *_segments(c)[1:]])),
    ("garbage-base64", lambda c: "!!!.@@@.###"),
    ("standard-base64-alphabet", _standard_base64),
    ("padded-segments", lambda c: ".".join(p + "==" for p in _segments(c))),
    ("empty-segments", lambda c: ".."),
    ("empty-header", lambda c: "." + ".".join(_segments(c)[1:])),
    ("empty-payload", lambda c: f"{_segments(c)[0]}..{_segments(c)[2]}"),
    ("empty-signature", lambda c: ".".join(_segments(c)[:2]) + "."),
    ("two-segments", lambda c: ".".join(_segments(c)[:2])),
    ("four-segments", lambda c: c.token + ".x"),
    ("five-segments-jwe", lambda c: "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aaaa.bbbb.cccc"),
    ("space-inside", lambda c: c.token[:20] + " " + c.token[20:]),
    ("non-ascii", lambda c: "ü.ü.ü"),
    ("header-json-array", lambda c: f"{b64(b'[1]')}.{_segments(c)[1]}.{_segments(c)[2]}"),
    ("header-not-json", lambda c: f"{b64(b'alg')}.{_segments(c)[1]}.{_segments(c)[2]}"),
    ("header-invalid-utf8", lambda c: f"{b64(BAD_UTF8_HEADER)}.{_segments(c)[1]}.x"),
    # signatures that are not the gateway's
    ("another-gateways-key", _other_gateway),
    ("same-kid-attacker-key", lambda c: c.signed(c.header, c.claims, c.attacker)),
    ("signature-of-another-token", _spliced),
    ("claims-swapped-under-valid-signature", _escalated),
    ("der-encoded-signature", _der_signature),
    ("zero-signature", lambda c: ".".join(_segments(c)[:2]) + "." + b64(bytes(64))),
    ("high-s-twin-of-a-valid-signature", _high_s_twin),
    # lifetimes the gateway never issues, correctly signed
    ("lifetime-ten-years", lambda c: c.signed(c.header, c.with_claims(
        exp=c.claims["iat"] + 10 * 365 * 86400))),
    ("backdated-and-long-lived", lambda c: c.signed(c.header, c.with_claims(
        iat=c.claims["iat"] - 365 * 86400, exp=c.claims["iat"] + 365 * 86400))),
    ("iat-a-day-ahead", lambda c: c.signed(c.header, c.with_claims(
        iat=c.claims["iat"] + 86400, exp=c.claims["exp"] + 86400))),
    ("oversized-token", lambda c: c.token + "A" * 5000),
]

JWT_CASES = [
    Case(f"jwt/{name}", "jwt", _bearer(make), 401, INVALID)
    for name, make in JWT_TOKENS
]
JWT_CASES += [
    Case("jwt/admin-token-where-access-token-required", "jwt",
         lambda c: bearer(c.seeded.admin_token, SESSIONS), 401, INVALID),
    Case("jwt/admin-token-over-the-longest-admin-lifetime", "jwt",
         lambda c: bearer(_admin_living(c, 87600 * 3600 + 2 * 86400), "/api/v3/networks/me"),
         401, INVALID),
    Case("jwt/access-token-on-admin-route", "jwt",
         lambda c: bearer(c.token, "/api/v3/networks/me"), 403, "Permission denied",
         code=400301),
    Case("jwt/expired-correctly-signed", "jwt",
         lambda c: bearer(c.signed(c.header, c.with_claims(
             iat=c.claims["iat"] - 90000, exp=c.claims["iat"] - 86400))), 401, "token expired"),
    Case("jwt/two-authorization-headers-garbage-first", "jwt",
         lambda c: http("GET", API, [("Authorization", "Bearer garbage.x.y"),
                                     ("Authorization", f"Bearer {c.token}")]), 401, INVALID),
    Case("jwt/token-in-query-without-upgrade", "jwt",
         lambda c: http("GET", f"{API}?token={c.token}"), 401, "Unauthorized"),
    Case("jwt/basic-scheme", "jwt",
         lambda c: http("GET", API, [("Authorization", f"Basic {c.token}")]), 401,
         "Unauthorized"),
    Case("jwt/token-over-header-limit", "jwt",
         lambda c: bearer(c.token + "A" * 9000), 431, "request headers too large",
         close_ok=True),
]


# --------------------------------------------------------------------------------------
# Request smuggling: framing the HTTP parser must refuse (400 JSON, or a close).

HEAD = b"POST /pub/x HTTP/1.1\r\nHost: api.amity.co\r\nConnection: close\r\n"
GET = b"GET /pub/x HTTP/1.1\r\nHost: api.amity.co\r\nConnection: close\r\n"
SMUGGLED = b"GET /internal/x HTTP/1.1\r\nHost: api.amity.co\r\nX-Smuggled: 1\r\n\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"

SMUGGLING_SHAPES: list[tuple[str, bytes]] = [
    ("cl-te", HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     + SMUGGLED),
    ("te-cl", HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n"
     + SMUGGLED),
    ("cl-te-body-first", HEAD + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
    ("duplicate-content-length", HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("conflicting-content-length", HEAD + b"Content-Length: 5\r\nContent-Length: 62\r\n\r\nhello"
     + SMUGGLED),
    ("content-length-list", HEAD + b"Content-Length: 5, 5\r\n\r\nhello"),
    ("content-length-plus", HEAD + b"Content-Length: +5\r\n\r\nhello"),
    ("content-length-negative", HEAD + b"Content-Length: -1\r\n\r\nhello"),
    ("content-length-hex", HEAD + b"Content-Length: 0x5\r\n\r\nhello"),
    ("content-length-overflow", HEAD + b"Content-Length: 99999999999999999999999\r\n\r\nhello"),
    ("content-length-space-before-colon", HEAD + b"Content-Length : 5\r\n\r\nhello"),
    ("content-length-letters", HEAD + b"Content-Length: 5a\r\n\r\nhello"),
    ("content-length-empty", HEAD + b"Content-Length:\r\n\r\nhello"),
    ("te-space-before-colon", HEAD + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-chunked-identity", HEAD + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ("te-identity", HEAD + b"Transfer-Encoding: identity\r\n\r\n" + SMUGGLED),
    ("te-duplicate-headers", HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"
     b"\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-xchunked", HEAD + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-vertical-tab", HEAD + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n"),
    ("te-gzip-not-chunked", HEAD + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("chunk-size-negative", CHUNKED + b"-1\r\nhi\r\n0\r\n\r\n"),
    ("chunk-size-hex-overflow", CHUNKED + b"FFFFFFFFFFFFFFFFFFFFFFFF\r\nhi\r\n0\r\n\r\n"),
    ("chunk-size-0x-prefix", CHUNKED + b"0x2\r\nhi\r\n0\r\n\r\n"),
    ("chunk-size-plus", CHUNKED + b"+2\r\nhi\r\n0\r\n\r\n"),
    ("chunk-size-space", CHUNKED + b"2 ;ext\r\nhi\r\n0\r\n\r\n"),
    ("chunk-size-not-hex", CHUNKED + b"zz\r\nhi\r\n0\r\n\r\n"),
    ("chunk-size-empty", CHUNKED + b"\r\nhi\r\n0\r\n\r\n"),
    ("chunk-bare-lf", CHUNKED + b"2\nhi\n0\n\n" + SMUGGLED),
    ("chunk-data-overrun", CHUNKED + b"2\r\nhiXX\r\n0\r\n\r\n"),
    ("request-line-bare-lf", b"GET /pub/x HTTP/1.1\nHost: api.amity.co\nConnection: close\n\n"),
    ("header-bare-lf", GET[:-2] + b"\nX-A: b\r\n\r\n"),
    ("header-bare-cr", GET + b"X-A: b\rX-B: c\r\n\r\n"),
    ("obs-fold-space", GET + b"X-A: b\r\n c\r\n\r\n"),
    ("obs-fold-tab", GET + b"X-A: b\r\n\tTransfer-Encoding: chunked\r\n\r\n"),
    ("obs-fold-first-header", b"GET /pub/x HTTP/1.1\r\n Host: api.amity.co\r\n"
     b"Connection: close\r\n\r\n"),
    ("nul-in-header-name", GET + b"X-A\x00: b\r\n\r\n"),
    ("nul-in-header-value", GET + b"X-A: b\x00c\r\n\r\n"),
    ("space-in-header-name", GET + b"X Gateway-User-Id: root\r\n\r\n"),
    ("space-before-colon-identity", GET + b"X-Gateway-User-Id : root\r\n\r\n"),
    ("empty-header-name", GET + b": b\r\n\r\n"),
    ("header-without-colon", GET + b"nocolon\r\n\r\n"),
    ("duplicate-host", GET + b"Host: evil\r\n\r\n"),
    ("missing-host", b"GET /pub/x HTTP/1.1\r\nConnection: close\r\n\r\n"),
    ("nul-in-method", b"G\x00T /pub/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("nul-in-target", b"GET /pub/x\x00y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("space-in-target", b"GET /pub/x /internal/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("request-line-extra-token", b"GET /pub/x HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
    ("bad-version", b"GET /pub/x HTTP/1.x\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("raw-overlong-utf8-target", b"GET /pub/\xc0\xae\xc0\xae/internal/x HTTP/1.1\r\nHost: x\r\n"
     b"Connection: close\r\n\r\n"),
]

SMUGGLING_CASES = [
    Case(f"smuggling/{name}", "smuggling", _raw(data), 400,
         contains="malformed request", close_ok=True, smuggled=("x-smuggled",))
    for name, data in SMUGGLING_SHAPES
]


# --------------------------------------------------------------------------------------
# Odd header values: not UTF-8, unknown expectations, spoofed identity.

HEADER_CASES = [
    Case("headers/expect-unknown", "headers",
         lambda c: http("POST", "/pub/x", [("Expect", "100-continuex")], b"hi"), 417,
         "Expectation Failed", close_ok=True),
    Case("headers/expect-not-utf8", "headers",
         lambda c: GET + b"Expect: \x80\xff\r\n\r\n", 400, "header Expect: not valid UTF-8"),
    Case("headers/expect-on-builtin", "headers",
         lambda c: http("POST", SESSIONS, [("Expect", "x"), ("x-api-key", c.seeded.open_api_key)],
                        _user().encode()), 417, "Expectation Failed", close_ok=True),
    Case("headers/authorization-not-utf8", "headers",
         lambda c: GET.replace(b"/pub/x", API.encode()) + b"Authorization: Bearer \xff\xfe.\xc0.a"
         b"\r\n\r\n", 400, "header Authorization: not valid UTF-8"),
    Case("headers/api-key-not-utf8", "headers",
         lambda c: HEAD.replace(b"/pub/x", SESSIONS.encode()) + b"x-api-key: \xff\xfe\r\n"
         b"Content-Length: 2\r\n\r\n{}", 400, "header x-api-key: not valid UTF-8"),
    Case("headers/api-key-sql", "headers",
         lambda c: http("POST", SESSIONS, [("x-api-key", "' OR '1'='1")], _user().encode()),
         401, "Unauthorized"),
    Case("headers/server-key-sql", "headers",
         lambda c: http("GET", "/api/v3/authentication/token?userId=victim",
                        [("x-server-key", "' OR 1=1 --")]), None),
    Case("headers/spoofed-identity-without-token", "headers",
         lambda c: http("GET", API, [("X-Gateway-User-Id", "root"), ("X-Gateway-Role", "admin"),
                                     ("X_Gateway_Token_Kind", "admin")]), 401, "Unauthorized"),
    Case("headers/console-cookie-garbage", "headers",
         lambda c: http("GET", NETWORK, [("Cookie", "gateway_console=' OR 1=1 --")]), 401),
    Case("headers/console-cookie-not-utf8", "headers",
         lambda c: GET.replace(b"/pub/x", NETWORK.encode()) + b"Cookie: gateway_console=\xff"
         b"\r\n\r\n", 400, "header Cookie: not valid UTF-8"),
    Case("headers/proxied-value-not-utf8", "headers",
         lambda c: GET + b"X-Name: caf\xe9\r\n\r\n", 400, "header X-Name: not valid UTF-8"),
    Case("headers/forged-identity-not-utf8", "headers",
         lambda c: GET + b"X-Gateway-User-Id: \xc0\xae\r\n\r\n", 400,
         "header X-Gateway-User-Id: not valid UTF-8"),
]


# --------------------------------------------------------------------------------------
# Size limits: exact statuses and messages.

TOO_LARGE_HEADERS = "request headers too large"

LIMIT_CASES = [
    Case("limits/request-line-over-limit", "limits",
         lambda c: http("GET", "/pub/" + "a" * 9000), 414, "URI too long", close_ok=True),
    Case("limits/query-over-limit", "limits",
         lambda c: http("GET", "/pub/x?q=" + "a" * 9000), 414, "URI too long", close_ok=True),
    Case("limits/header-value-over-limit", "limits",
         lambda c: http("GET", "/pub/x", [("X-Big", "b" * 9000)]), 431, TOO_LARGE_HEADERS,
         close_ok=True),
    Case("limits/header-name-over-limit", "limits",
         lambda c: http("GET", "/pub/x", [("X-" + "n" * 9000, "1")]), 431, TOO_LARGE_HEADERS,
         close_ok=True),
    Case("limits/cookie-over-limit", "limits",
         lambda c: http("GET", "/pub/x", [("Cookie", "a=" + "c" * 9000)]), 431,
         TOO_LARGE_HEADERS, close_ok=True),
    Case("limits/header-block-over-32k", "limits",
         lambda c: http("GET", "/pub/x", [(f"X-Part-{i}", "v" * 4000) for i in range(10)]),
         431, TOO_LARGE_HEADERS, close_ok=True),
    Case("limits/too-many-headers", "limits",
         lambda c: http("GET", "/pub/x", [(f"X-H{i}", "1") for i in range(200)]), 431,
         TOO_LARGE_HEADERS, close_ok=True),
    Case("limits/129-headers", "limits",
         lambda c: http("GET", "/pub/x", [(f"X-H{i}", "1") for i in range(127)]), 431,
         TOO_LARGE_HEADERS, close_ok=True),
    Case("limits/builtin-body-over-limit", "limits",
         lambda c: http("POST", SESSIONS, [("x-api-key", c.seeded.open_api_key),
                                           ("Content-Type", "application/json")],
                        b'{"userId": "' + b"u" * (1 << 20) + b'"}'), 413, "request too large"),
    Case("limits/builtin-declared-length-over-limit", "limits",
         lambda c: http("POST", SESSIONS, [("x-api-key", c.seeded.open_api_key),
                                           ("Content-Length", str(2 << 20))],
                        b'{"userId": "', length=False), 413, "request too large"),
    Case("limits/proxied-declared-length-over-limit", "limits",
         lambda c: http("POST", "/pub/x", [("Content-Length", str(2 << 30))], b"x", length=False),
         413, "request too large"),
]


# --------------------------------------------------------------------------------------
# Path tricks: never a way around a `deny` rule or an authentication.

DOT = "path: dot segment in path"
SLASH = "path: encoded slash or backslash in path"
OVERLONG = "path: overlong UTF-8 in path"

PATH_CASES_DATA: list[tuple[str, str, int, str | None]] = [
    # (id, request target, status, exact message or None)
    ("denied-baseline", "/internal/x", 403, "Permission denied"),
    ("dotdot", "/pub/../internal/x", 400, DOT),
    ("dotdot-encoded", "/pub/%2e%2e/internal/x", 400, DOT),
    ("dotdot-encoded-upper", "/pub/%2E%2E/internal/x", 400, DOT),
    ("dotdot-half-encoded", "/pub/.%2e/internal/x", 400, DOT),
    ("dot-encoded", "/pub/%2e/x", 400, DOT),
    ("dotdot-path-parameter", "/pub/..;/internal/x", 400, DOT),
    ("dotdot-at-start", "/../internal/x", 400, DOT),
    ("dot-at-start", "/./internal/x", 400, DOT),
    ("dotdot-double-encoded", "/pub/%252e%252e/internal/x", 400,
     "path: double-encoded character in path"),
    ("slash-double-encoded", "/pub/..%252finternal/x", 400,
     "path: double-encoded character in path"),
    ("encoded-slash", "/pub/..%2finternal/x", 400, SLASH),
    ("encoded-slash-upper", "/pub%2F..%2Finternal", 400, SLASH),
    ("encoded-slash-in-denied", "/internal%2fx", 400, SLASH),
    ("encoded-backslash", "/pub/..%5cinternal/x", 400, SLASH),
    ("raw-backslash", "/pub\\..\\internal\\x", 400, None),
    ("nul-encoded", "/pub/x%00/../../internal/x", 400, "path: NUL byte in path"),
    ("nul-encoded-in-denied", "/internal%00/x", 400, "path: NUL byte in path"),
    ("double-slash-to-denied", "//internal/x", 403, "Permission denied"),
    ("many-slashes-to-denied", "///internal///x", 403, "Permission denied"),
    ("encoded-letter-to-denied", "/%69nternal/x", 403, "Permission denied"),
    ("encoded-letter-upper-to-denied", "/inter%6Eal/x", 403, "Permission denied"),
    ("denied-api-dotdot", "/api/v9/x/../admin/keys", 400, DOT),
    ("denied-api-double-slash", "/api//v9//admin/keys", 403, "Permission denied"),
    ("overlong-utf8-dotdot", "/pub/%c0%ae%c0%ae/internal/x", 400, OVERLONG),
    ("overlong-utf8-dotdot-upper", "/pub/%C0%AE%C0%AE/internal/x", 400, OVERLONG),
    ("overlong-utf8-slash", "/pub/..%c0%afinternal/x", 400, OVERLONG),
    ("overlong-utf8-backslash", "/pub/..%c1%9cinternal/x", 400, OVERLONG),
    ("overlong-utf8-3-byte-dot", "/pub/%e0%80%ae%e0%80%ae/internal/x", 400, OVERLONG),
    ("overlong-utf8-4-byte-slash", "/pub/..%f0%80%80%afinternal/x", 400, OVERLONG),
    ("auth-baseline", "/api/v3/networks/me", 401, "Unauthorized"),
    ("auth-dotdot-from-public", "/pub/../api/v3/networks/me", 400, DOT),
    ("auth-encoded-dotdot-from-public", "/pub/%2e%2e/api/v3/networks/me", 400, DOT),
    ("auth-double-slash", "//api/v3/networks/me", 401, "Unauthorized"),
    ("auth-encoded-letter", "/api/v3/networks/m%65", 401, "Unauthorized"),
    ("auth-trailing-slash", "/api/v3/networks/me/", 401, "Unauthorized"),
    ("auth-path-parameter", "/api/v3/networks/me;.js", 400, "path: ';' in path"),
    ("auth-upper-case", "/API/v3/networks/me", 400,
     "path: its letter case decides which route it takes"),
    ("auth-mixed-case-segment", "/api/v3/Audit-Logs", 400,
     "path: its letter case decides which route it takes"),
    ("auth-trailing-dot", "/api/v3/audit-logs.", 400, "path: segment ending in '.' in path"),
    ("auth-encoded-trailing-dot", "/api/v3/audit-logs%2E", 400,
     "path: segment ending in '.' in path"),
    ("builtin-double-slash", "//api/v3/audit-logs", 401, "Unauthorized"),
    ("builtin-encoded-letters", "/api/v3/%61udit-logs", 401, "Unauthorized"),
    ("absolute-form-denied", "http://evil/internal/x", 400, "path: path must start with /"),
    ("absolute-form-public", "http://evil/pub/x", 400, "path: path must start with /"),
    ("asterisk-form", "*", 400, None),
    ("no-leading-slash", "pub/x", 400, None),
    ("fragment", "/pub/x#frag", 400, "path: query or fragment delimiter in path"),
    ("malformed-escape", "/pub/%zz", 400, "path: malformed percent-encoding"),
    ("truncated-escape", "/pub/%", 400, "path: malformed percent-encoding"),
    ("encoded-crlf", "/pub/%0d%0aX-Smuggled:%201", 400, "path: control character in path"),
    ("encoded-tab", "/pub/x%09", 400, "path: control character in path"),
    ("encoded-del", "/pub/x%7f", 400, "path: control character in path"),
]

PATH_CASES = [
    Case(f"paths/{name}", "paths", _get(target), status,
         message, code=400301 if status == 403 else None, close_ok=True)
    for name, target, status, message in PATH_CASES_DATA
]
PATH_CASES += [
    Case("paths/connect-authority-form", "paths",
         lambda c: b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\nConnection: close\r\n\r\n",
         400, close_ok=True),
    Case("paths/options-asterisk", "paths", lambda c: http("OPTIONS", "*"), 400, close_ok=True),
]

# The query is not the policy's business, but must reach the upstream exactly as sent:
# a decoded CR LF or space there would split the upstream request line.
VERBATIM_QUERIES: list[tuple[str, str]] = [
    ("query-crlf", "/pub/x?a=%0d%0aX-Smuggled:%201"),
    ("query-request-splitting",  # a whole second request, to a denied path
     "/pub/x?a=%20HTTP/1.1%0d%0aHost:%20x%0d%0a%0d%0aGET%20/internal/x%20HTTP/1.1%0d%0a"
     "Host:%20x%0d%0aX-Smuggled:%201%0d%0aX-Pad:"),
    ("query-space", "/pub/x?a=%20b"),
    ("query-hash", "/pub/x?a=%23b"),
    ("query-nul", "/pub/x?a=%00b"),
]

PATH_CASES += [
    Case(f"paths/{name}", "paths", _get(target),
         verbatim=target.encode(), smuggled=("x-smuggled",))
    for name, target in VERBATIM_QUERIES
]


# --------------------------------------------------------------------------------------
# Query parameters of the built-in endpoints.


def _admin_get(method: str, target: str) -> Callable[[Ctx], bytes]:
    return lambda c: http(method, target, [("Authorization", f"Bearer {c.seeded.admin_token}")])


PARAM_CASES = [
    Case("params/audit-limit-superscript-digit", "params",
         _admin_get("GET", "/api/v3/audit-logs?limit=%C2%B2"), 400, contains="limit"),
    Case("params/audit-limit-5000-digits", "params",
         _admin_get("GET", "/api/v3/audit-logs?limit=" + "9" * 5000), 400, contains="limit"),
    Case("params/audit-before-negative", "params",
         _admin_get("GET", "/api/v3/audit-logs?before=-1"), 400, contains="before"),
    Case("params/audit-limit-float", "params",
         _admin_get("GET", "/api/v3/audit-logs?limit=1e999"), 400, contains="limit"),
    Case("params/revoke-admin-token-username-nul", "params",
         _admin_get("DELETE", "/api/v1/admin-token?username=ro%00ot"), 400,
         contains="username"),
    Case("params/revoke-admin-token-username-not-utf8", "params",
         _admin_get("DELETE", "/api/v1/admin-token?username=%ff%fe"), 404,
         "username Not Found."),
    Case("params/revoke-sessions-user-id-nul", "params",
         _admin_get("DELETE", "/api/v4/sessions?userId=vic%00tim"), None),
    Case("params/auth-token-user-id-nul-bad-key", "params",
         lambda c: http("GET", "/api/v3/authentication/token?userId=a%00b",
                        [("x-server-key", "nope")]), 401, "Unauthorized"),
]


# --------------------------------------------------------------------------------------
# Bad JSON on the built-in endpoints.

JSON_BODY = "body: not valid JSON"
NOT_OBJECT = "body: expected a JSON object"


def _session(body: bytes | str) -> Callable[[Ctx], bytes]:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return lambda c: http("POST", SESSIONS, [("x-api-key", c.seeded.open_api_key),
                                             ("Content-Type", "application/json")], data)


def _login(body: bytes | str) -> Callable[[Ctx], bytes]:
    data = body.encode() if isinstance(body, str) else body
    return lambda c: http("POST", "/console/v1/login", [("x-api-key", c.seeded.secure_api_key),
                                                        ("Content-Type", "application/json")],
                          data)


def _admin(method: str, path: str, body: bytes | str) -> Callable[[Ctx], bytes]:
    data = body.encode() if isinstance(body, str) else body
    return lambda c: http(method, path, [("Authorization", f"Bearer {c.seeded.admin_token}"),
                                         ("Content-Type", "application/json")], data)


def _user(**fields: Any) -> str:
    return json.dumps({"userId": "mallory", "deviceId": "dev-m",
                       "deviceInfo": {"kind": "web"}, **fields})


NETWORK = "/api/v3/networks/me"
SECURITY = "/api/v3/network-settings/security-configs"
PUSH = "/api/v3/notification/setting"

JSON_CASES_DATA: list[tuple[str, Callable[[Ctx], bytes], str | None, str | None]] = [
    # (id, request, exact message or None, part of the message or None)
    ("sessions/deep-nesting-array", _session("[" * 100_000), JSON_BODY, None),
    ("sessions/deep-nesting-object", _session('{"a":' * 100_000), JSON_BODY, None),
    ("sessions/deep-nesting-in-field", _session(_user(displayName=None)[:-1] + ', "x": '
                                                + "[" * 100_000 + "]" * 100_000 + "}"),
     JSON_BODY, None),
    ("sessions/huge-float", _session('{"userId": 1e999999, "deviceId": "d"}'), None, "userId"),
    ("sessions/huge-negative-float", _session('{"userId": "u", "deviceId": -1e999999}'),
     None, "deviceId"),
    ("sessions/huge-integer", _session('{"userId": ' + "9" * 5000 + ', "deviceId": "d"}'),
     JSON_BODY, None),
    ("sessions/nan-literal", _session('{"userId": NaN, "deviceId": "d"}'), JSON_BODY, None),
    ("sessions/infinity-literal", _session('{"userId": "u", "deviceId": Infinity}'),
     JSON_BODY, None),
    ("sessions/invalid-utf8", _session(b'{"userId": "\xff\xfe", "deviceId": "d"}'),
     JSON_BODY, None),
    ("sessions/utf16-body", _session(_user().encode("utf-16")), JSON_BODY, None),
    ("sessions/utf8-bom", _session(b"\xef\xbb\xbf" + _user().encode()), JSON_BODY, None),
    ("sessions/trailing-garbage", _session(_user() + " x"), JSON_BODY, None),
    ("sessions/two-objects", _session(_user() + _user()), JSON_BODY, None),
    ("sessions/truncated", _session(_user()[:-5]), JSON_BODY, None),
    ("sessions/empty-body", _session(b""), JSON_BODY, None),
    ("sessions/body-null", _session("null"), NOT_OBJECT, None),
    ("sessions/body-array", _session("[]"), NOT_OBJECT, None),
    ("sessions/body-string", _session('"userId"'), NOT_OBJECT, None),
    ("sessions/single-quotes", _session("{'userId': 'a', 'deviceId': 'd'}"), JSON_BODY, None),
    ("sessions/userId-int", _session(_user(userId=1)), "userId must be a string", None),
    ("sessions/userId-list", _session(_user(userId=["a"])), "userId must be a string", None),
    ("sessions/userId-operator", _session(_user(userId={"$ne": None})),
     "userId must be a string", None),
    ("sessions/userId-empty", _session(_user(userId="")), None, "userId"),
    ("sessions/userId-too-long", _session(_user(userId="u" * 51)), None, "userId"),
    ("sessions/userId-nul", _session(_user(userId="a\u0000b")), None, "userId"),
    ("sessions/userId-newline", _session(_user(userId="a\r\nX-Gateway-Role: admin")),
     None, "userId"),
    ("sessions/userId-lone-surrogate", _session('{"userId": "a\\ud800", "deviceId": "d"}'),
     None, "userId"),
    ("sessions/deviceId-missing", _session('{"userId": "mallory"}'), None, "deviceId"),
    ("sessions/deviceId-too-long", _session(_user(deviceId="d" * 151)), None, "deviceId"),
    ("sessions/deviceId-lone-surrogate", _session('{"userId": "m", "deviceId": "\\udfff"}'),
     None, "deviceId"),
    ("sessions/deviceInfo-string", _session(_user(deviceInfo="web")), None, "deviceInfo"),
    ("sessions/deviceInfo-kind-unknown", _session(_user(deviceInfo={"kind": "windows"})),
     None, "deviceInfo.kind"),
    ("sessions/deviceInfo-kind-list", _session(_user(deviceInfo={"kind": ["web"]})),
     None, "deviceInfo.kind"),
    ("sessions/deviceInfo-model-too-long", _session(_user(deviceInfo={"model": "m" * 501})),
     None, "deviceInfo.model"),
    ("sessions/displayName-int", _session(_user(displayName=5)), None, "displayName"),
    ("sessions/displayName-lone-surrogate",
     _session(_user()[:-1] + ', "displayName": "\\ud83d"}'), None, "displayName"),
    ("sessions/authToken-int", _session(_user(authToken=5)), None, "authToken"),
    ("sessions/duplicate-keys-last-valid",
     _session('{"userId": "victim", "deviceId": "dev-1", "userId": "mallory"}'), None,
     "more than once"),
    ("sessions/duplicate-keys-last-invalid",
     _session('{"userId": "mallory", "deviceId": "dev-m", "userId": 7}'), None, "userId"),
    ("sessions/duplicate-nested-keys",
     _session('{"userId": "mallory", "deviceId": "dev-m", '
              '"deviceInfo": {"kind": "web", "kind": "ios"}}'), None, "more than once"),
    ("login/deep-nesting", _login("[" * 100_000), JSON_BODY, None),
    ("login/username-int", _login('{"username": 1, "password": "pw"}'),
     "username must be a string", None),
    ("login/password-object", _login('{"username": "root", "password": {"$gt": ""}}'),
     "password must be a string", None),
    ("login/invalid-utf8", _login(b'{"username": "r\xc3", "password": "pw"}'), JSON_BODY, None),
    ("login/duplicate-keys", _login('{"username": "root", "password": "x", "password": "pw"}'),
     None, "more than once"),
    ("network/flag-string", _admin("PUT", NETWORK, '{"useSecureAuthentication": "false"}'),
     None, "useSecureAuthentication"),
    ("network/flag-int", _admin("PUT", NETWORK, '{"mtlsEnabled": 1}'), None, "mtlsEnabled"),
    ("network/body-array", _admin("PUT", NETWORK, "[true]"), NOT_OBJECT, None),
    ("network/duplicate-keys", _admin(
        "PUT", NETWORK, '{"useSecureAuthentication": true, "useSecureAuthentication": false}'),
     None, "more than once"),
    ("security-configs/hours-huge-float", _admin(
        "PUT", SECURITY, '{"adminToken": {"expiresInHours": 1e999999}}'), None, "expiresInHours"),
    ("security-configs/hours-fraction", _admin(
        "PUT", SECURITY, '{"adminToken": {"expiresInHours": 1.5}}'), None, "expiresInHours"),
    ("security-configs/hours-bool", _admin(
        "PUT", SECURITY, '{"adminToken": {"expiresInHours": true}}'), None, "expiresInHours"),
    ("security-configs/hours-string", _admin(
        "PUT", SECURITY, '{"adminToken": {"expiresInHours": "24"}}'), None, "expiresInHours"),
    ("security-configs/hours-bigint", _admin(
        "PUT", SECURITY, '{"adminToken": {"expiresInHours": 1' + "0" * 30 + "}}"),
     None, "expiresInHours"),
    ("security-configs/hours-negative", _admin(
        "PUT", SECURITY, '{"adminToken": {"expiresInHours": -1}}'), None, "expiresInHours"),
    ("security-configs/adminToken-list", _admin("PUT", SECURITY, '{"adminToken": [24]}'),
     None, "adminToken"),
    ("push/level-wrong", _admin("POST", PUSH, '{"level": "user"}'), None, "level"),
    ("push/events-not-list", _admin(
        "POST", PUSH, '{"level": "network", "notifiableEvents": "all"}'), None,
     "notifiableEvents"),
    ("push/event-item-string", _admin(
        "POST", PUSH, '{"level": "network", "notifiableEvents": ["chat"]}'), None,
     "notifiableEvents"),
    ("push/many-unknown-events", _admin(
        "POST", PUSH, json.dumps({"level": "network", "notifiableEvents": [
            {"moduleName": "chat", "name": f"e{i}", "isPushNotifiable": True}
            for i in range(10_000)]})), None, "notifiableEvents"),
]

JSON_CASES = [
    Case(f"json/{name}", "json", request, 400, message, contains)
    for name, request, message, contains in JSON_CASES_DATA
]


# --------------------------------------------------------------------------------------
# CSR garbage: POST /api/v3/networks/certificates (run once the endpoint exists).


def _certificate(body: Callable[[Ctx], Any]) -> Callable[[Ctx], bytes]:
    def build(c: Ctx) -> bytes:
        value = body(c)
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        return http("POST", CERTIFICATES, [("Authorization", f"Bearer {c.seeded.admin_token}"),
                                           ("Content-Type", "application/json")], data)
    return build


CSR_CASES_DATA: list[tuple[str, Callable[[Ctx], Any], str]] = [
    # (id, body, part of the message)
    ("csr-garbage", lambda c: {"name": "c1", "csr": "not a csr"}, "csr"),
    ("csr-armored-garbage", lambda c: {"name": "c1", "csr": _pem(
        "CERTIFICATE REQUEST", b"\x30\x82garbage")}, "csr"),
    ("csr-armor-only", lambda c: {"name": "c1", "csr": "-----BEGIN CERTIFICATE REQUEST-----\n"
                                                       "-----END CERTIFICATE REQUEST-----\n"},
     "csr"),
    ("csr-bad-base64", lambda c: {"name": "c1", "csr": c.csr_pem.replace("M", "!", 3)}, "csr"),
    ("csr-truncated", lambda c: {"name": "c1", "csr": c.csr_pem[: len(c.csr_pem) // 2]}, "csr"),
    ("csr-bad-signature", lambda c: {"name": "c1", "csr": c.tampered_csr()}, "csr"),
    ("csr-is-a-certificate", lambda c: {"name": "c1", "csr": c.certificate_pem}, "csr"),
    ("csr-is-a-private-key", lambda c: {"name": "c1", "csr": c.key_pem}, "csr"),
    ("csr-der-without-armor", lambda c: {"name": "c1", "csr": base64.b64encode(
        x509.load_pem_x509_csr(c.csr_pem.encode()).public_bytes(
            serialization.Encoding.DER)).decode()}, "csr"),
    ("csr-nul-inside", lambda c: {"name": "c1", "csr": c.csr_pem.replace("\n", "\n\u0000", 2)},
     "csr"),
    ("csr-empty", lambda c: {"name": "c1", "csr": ""}, "csr"),
    ("csr-int", lambda c: {"name": "c1", "csr": 42}, "csr"),
    ("csr-list", lambda c: {"name": "c1", "csr": [c.csr_pem]}, "csr"),
    ("csr-missing", lambda c: {"name": "c1"}, "csr"),
    ("csr-null", lambda c: {"name": "c1", "csr": None}, "csr"),
    ("csr-huge", lambda c: {"name": "c1", "csr": "A" * 900_000}, "csr"),
    ("name-missing", lambda c: {"csr": c.csr_pem}, "name"),
    ("name-too-long", lambda c: {"name": "n" * 31, "csr": c.csr_pem}, "name"),
    ("name-empty", lambda c: {"name": "", "csr": c.csr_pem}, "name"),
    ("name-int", lambda c: {"name": 1, "csr": c.csr_pem}, "name"),
    ("name-control-characters", lambda c: {"name": "a\nb", "csr": c.csr_pem}, "name"),
    ("body-not-json", lambda c: b"csr=garbage", "body"),
    ("body-array", lambda c: [{"name": "c1", "csr": c.csr_pem}], "body"),
]

CSR_CASES = [
    Case(f"csr/{name}", "csr", _certificate(body), 400, contains=part,
         needs=("POST", CERTIFICATES))
    for name, body, part in CSR_CASES_DATA
]


# --------------------------------------------------------------------------------------
# One route table, one decision, one outbound filter: no spelling of a request reaches a
# built-in endpoint's code without its checks, is forwarded in its place, or carries a
# credential upstream.

PERMISSION_DENIED = "Permission denied"
BUILTIN_SPELLINGS = ("//api/v3/audit-logs", "/api//v3/audit-logs", "/api/v3/audit-logs/",
                     "/api/v3/%61udit-logs", "///api/v3/audit-logs")
ADMIN_READS = ("/api/v3/audit-logs", "/api/v3/networks/certificates",
               "/api/v3/networks/server-key", "/api/v3/networks/me", "/api/v1/admin-token")
# Credentials and overrides that only the gateway may read, in several spellings.
NEVER_FORWARDED = (
    ("x-server-key", "k"), ("X-Server-Key", "k"), ("x_server_key", "k"),
    ("X-HTTP-Method-Override", "DELETE"), ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"), ("x_http_method_override", "DELETE"),
    ("X_Gateway_User_Id", "root"), ("x-gateway-role", "super-admin"),
)

ROUTING_CASES = [
    # An end user's token on admin reads, by GET (HEAD: tests/proxy/test_route_table.py).
    *(Case(f"routing/admin-read-{i}", "routing",
           _user_get(path), 403, PERMISSION_DENIED, code=400301)
      for i, path in enumerate(ADMIN_READS)),
    *(Case(f"routing/builtin-spelling-{i}", "routing",
           _user_get(path), 403, PERMISSION_DENIED, code=400301)
      for i, path in enumerate(BUILTIN_SPELLINGS)),
    Case("routing/auth-token-double-slash", "routing",
         lambda c: http("GET", "//api/v3/authentication/token?userId=x",
                        [("x-server-key", "wrong")]), 401, "Unauthorized"),
    Case("routing/console-login-double-slash", "routing",
         lambda c: http("POST", "//console/v1/login", [("Content-Type", "application/json")],
                        b"{}"), 401, "Unauthorized"),
    Case("routing/builtin-other-method", "routing",
         lambda c: http("PATCH", "/api/v3/networks/me", [("Authorization", f"Bearer {c.token}")],
                        b"{}"), 405, "Method Not Allowed"),
    Case("routing/builtin-other-method-spelled", "routing",
         lambda c: http("PUT", "//api/v3/sessions/", [("Authorization", f"Bearer {c.token}")],
                        b"{}"), 405, "Method Not Allowed"),
    Case("routing/trailing-dot-host-deny", "routing",
         lambda c: http("GET", "/internal/x", host="api.eu.amity.co."), 403, PERMISSION_DENIED,
         code=400301),
    *(Case(f"routing/never-forwarded-{name}", "routing",
           _get("/pub/x", [(name, value)]),
           verbatim=b"/pub/x", smuggled=(name.lower(),))
      for name, value in NEVER_FORWARDED),
    Case("routing/gateway-token-on-public-route", "routing",
         lambda c: http("GET", "/pub/x", [("Authorization", f"Bearer {c.token}")]),
         verbatim=b"/pub/x", smuggled=("authorization",)),
]


CASES: list[Case] = [*JWT_CASES, *SMUGGLING_CASES, *HEADER_CASES, *LIMIT_CASES, *PATH_CASES,
                     *PARAM_CASES, *JSON_CASES, *CSR_CASES, *ROUTING_CASES]

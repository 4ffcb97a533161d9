"""Access and admin tokens: JWTs issued and verified by the gateway.

Verification is the hot path. A token's signature and claims are checked once and the
result cached in memory until the token expires; what can change after
issue (revocation, supersession, bans) is looked up in the in-memory AuthState. So a
request with a known token costs two dictionary lookups, never a database round trip.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import math
import secrets
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt

from gateway.auth.binding import cnf_claim, parse_cnf
from gateway.auth.claims import Claims
from gateway.auth.ecdsa import install_low_s_signing, token_is_high_s
from gateway.auth.keyring import KeyRing
from gateway.auth.lifetimes import Lifetimes
from gateway.auth.sealing import Sealer
from gateway.auth.state import AuthState
from gateway.errors import GatewayError, invalid_token, token_expired
from gateway.store import IssuedCredential

# The `iss` of tokens issued before `tokens.issuer` existed: still accepted, so that they
# keep working until they expire (their lifetime is bounded like any other's).
ISSUER = "gateway"
MAX_TOKEN_BYTES = 4096
REQUIRED_CLAIMS = ("iss", "sub", "iat", "exp", "jti", "nid", "kind")
KINDS = ("access", "admin")
CACHE_ENTRIES = 200_000

# Every token this process signs goes through pyjwt's registry: make its ECDSA low-S.
install_low_s_signing()


# A packed entry: until, exp, iat, the index of its shared fields (nid, kind, kid, role,
# iss) in the cache's table, the lengths in characters of jti, sub, did and cert_sha256
# (_NONE for None), then those four strings in UTF-8 (lone surrogates, which JSON
# allows, kept as they are).
_HEAD = struct.Struct("<dddI4H")
_UNTIL = struct.Struct("<d")  # at offset 0
_CONTEXT = struct.Struct("<I")
_CONTEXT_AT = 3 * 8  # after until, exp and iat
_NONE = 0xFFFF
HOT_ENTRIES = 1024  # about 0.9 KB each (the token string and its claims)
CONTEXTS_BEFORE_COMPACTION = 1024

Context = tuple[str, str, str, str | None, str | None]  # nid, kind, kid, role, iss


def _digest(token: str) -> bytes:
    """The key of a token's packed entry. 128 bits name one token: the odds that two of
    10^12 tokens share a digest are about 10^-15, those that a string made up to match
    one of 200,000 cached tokens does are 2^-110 a try, and BLAKE2b has no known way to
    find a string with a given digest faster than trying 2^128 of them."""
    return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class VerifiedCache:
    """Verified claims by token, bounded; an entry is never used past its `until`.

    Every entry is packed into one bytes object keyed by a 16-byte digest of the token:
    about 200 bytes an entry (tracemalloc, tests/auth/test_verified_cache_memory.py),
    where the token string and a Claims object with its own strings and floats took
    1.1 KB; 200,000 live tokens hold about 40 MiB a worker instead of 210. The
    HOT_ENTRIES tokens last put or used are also kept as they were, token string to
    Claims, about 1 MB in all: a client's next requests cost one plain dict lookup, 0.06
    µs (aiocache's memory cache measured 10 µs a lookup here, 5% of a proxied request:
    its decorator stack reads os.environ on every call). A packed entry costs a few µs
    to find and unpack (hashing the token, building its Claims) and is then hot again;
    a signature check costs 200 µs.
    When full, expired entries go first; if that frees too little, it starts over.
    """

    def __init__(self, max_entries: int = CACHE_ENTRIES, clock: Callable[[], float] = time.time):
        self._entries: dict[bytes, bytes] = {}
        self._hot: dict[str, tuple[Claims, float]] = {}
        self._max = max_entries
        self._hot_max = max(1, min(HOT_ENTRIES, max_entries))
        self._clock = clock
        # The fields that repeat across tokens, each combination once.
        self._contexts: list[Context] = []
        self._context_index: dict[Context, int] = {}
        self._compact_at = CONTEXTS_BEFORE_COMPACTION

    def get(self, token: str) -> Claims | None:
        hot = self._hot.get(token)
        if hot is not None:
            claims, until = hot
            if until >= self._clock():
                return claims
            del self._hot[token]
        key = _digest(token)
        packed = self._entries.get(key)
        if packed is None:
            return None
        until, claims = _unpack(packed, self._contexts)
        if until < self._clock():
            del self._entries[key]
            return None
        self._keep_hot(token, claims, until)
        return claims

    def put(self, token: str, claims: Claims, until: float) -> None:
        if until <= self._clock():
            return
        if len(self._entries) >= self._max:
            self._drop_expired(self._clock())
            if len(self._entries) >= self._max // 2:
                self.clear()
        strings = (claims.jti, claims.sub, claims.did, claims.cert_sha256)
        lengths = [_NONE if s is None else len(s) for s in strings]
        if any(s is not None and len(s) >= _NONE for s in strings):
            return  # far longer than a token of ours carries: not kept
        context = (claims.nid, claims.kind, claims.kid, claims.role, claims.iss)
        index = self._context_index.get(context)
        if index is None:
            index = self._context_index[context] = len(self._contexts)
            self._contexts.append(context)
        text = "".join(s for s in strings if s is not None)
        self._entries[_digest(token)] = _HEAD.pack(
            until, claims.exp, claims.iat, index, *lengths
        ) + text.encode("utf-8", "surrogatepass")
        self._keep_hot(token, claims, until)

    def __len__(self) -> int:
        return len(self._entries)

    def prune(self) -> int:
        """Drop expired entries (periodically, so memory follows live tokens); how many."""
        before = len(self._entries)
        self._drop_expired(self._clock())
        if len(self._contexts) > self._compact_at:
            self._compact()
        return before - len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._hot.clear()
        self._contexts.clear()
        self._context_index.clear()
        self._compact_at = CONTEXTS_BEFORE_COMPACTION

    def _keep_hot(self, token: str, claims: Claims, until: float) -> None:
        if len(self._hot) >= self._hot_max:
            self._hot.clear()
        self._hot[token] = (claims, until)

    def _drop_expired(self, now: float) -> None:
        until = _UNTIL.unpack_from
        self._entries = {k: p for k, p in self._entries.items() if until(p)[0] >= now}
        self._hot = {t: e for t, e in self._hot.items() if e[1] >= now}

    def _compact(self) -> None:
        """Forget the shared fields no live entry uses any more (a retired key's, a
        deleted network's), renumbering the rest."""
        renumbered: dict[int, int] = {}
        contexts: list[Context] = []
        entries: dict[bytes, bytes] = {}
        for key, packed in self._entries.items():
            was = _CONTEXT.unpack_from(packed, _CONTEXT_AT)[0]
            index = renumbered.get(was)
            if index is None:
                index = renumbered[was] = len(contexts)
                contexts.append(self._contexts[was])
            if index != was:
                packed = b"".join((packed[:_CONTEXT_AT], _CONTEXT.pack(index),
                                   packed[_CONTEXT_AT + _CONTEXT.size:]))
            entries[key] = packed
        self._entries = entries
        self._contexts = contexts
        self._context_index = {context: i for i, context in enumerate(contexts)}
        self._compact_at = max(CONTEXTS_BEFORE_COMPACTION, 2 * len(contexts))


def _unpack(packed: bytes, contexts: list[Context]) -> tuple[float, Claims]:
    """The `until` and the claims of a packed entry."""
    until, exp, iat, context, n_jti, n_sub, n_did, n_cert = _HEAD.unpack_from(packed)
    text = packed[_HEAD.size:].decode("utf-8", "surrogatepass")
    did_at = n_jti + n_sub
    cert_at = did_at if n_did == _NONE else did_at + n_did
    nid, kind, kid, role, iss = contexts[context]
    return until, Claims(
        sub=text[n_jti:did_at], nid=nid, kind=kind, jti=text[:n_jti], iat=iat, exp=exp,
        kid=kid, did=None if n_did == _NONE else text[did_at:cert_at], role=role, iss=iss,
        cert_sha256=None if n_cert == _NONE else text[cert_at:],
    )


class TokenService:
    def __init__(
        self,
        ring: KeyRing,
        state: AuthState,
        sealer: Sealer,
        *,
        algorithms: tuple[str, ...],
        leeway: float,
        clock: Callable[[], float] = time.time,
        lifetimes: Callable[[], Lifetimes] | None = None,
        issuer: str = ISSUER,
    ) -> None:
        self.ring = ring
        self.issuer = issuer  # the `iss` of every token signed here
        self._issuers = frozenset({issuer, ISSUER})
        self.state = state
        self.sealer = sealer
        self._algorithms = algorithms
        self._leeway = leeway
        self._clock = clock
        # Asked on every decode, so that a reload raising a lifetime never refuses the
        # longer tokens issued under it (and a lowered one ends them, as a restart would).
        self._lifetimes = lifetimes or Lifetimes
        self.cache = VerifiedCache(clock=clock)

    def forget_key(self, kid: str) -> None:
        """A key was revoked: its tokens are refused from now on, cached ones included
        (the whole cache goes: revocations are rare, and each live token is checked again
        once, about 0.2 ms)."""
        self.ring.forget(kid)
        self.cache.clear()

    # -- issue ----------------------------------------------------------------------

    async def issue(
        self,
        *,
        kind: str,
        network_id: str,
        subject: str,
        ttl: float,
        device_id: str | None = None,
        role: str | None = None,
        now: float | None = None,
        cert_sha256: str | None = None,
    ) -> tuple[str, IssuedCredential]:
        """Sign a token; the caller records the returned credential in the store.
        `cert_sha256`: the client certificate it is bound to (RFC 8705 `cnf`)."""
        if not self.ring.loaded:  # the signer was just revoked: fetch its replacement
            await self.ring.load()
        key = self.ring.signer()
        issued = self._clock() if now is None else now
        expires = issued + ttl
        jti = secrets.token_hex(16)
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": subject, "iat": int(issued), "exp": int(expires),
            "jti": jti, "nid": network_id, "kind": kind,
        }
        if device_id is not None:
            claims["did"] = device_id
        if role is not None:
            claims["role"] = role
        if cert_sha256 is not None:
            claims["cnf"] = cnf_claim(cert_sha256)
        encode = jwt.encode
        if key.algorithm in ("RS256", "PS256"):  # RSA signing takes ~1 ms: off the loop
            token = await asyncio.to_thread(
                encode, claims, key.private_key, algorithm=key.algorithm,
                headers={"kid": key.kid},
            )
        else:
            token = encode(claims, key.private_key, algorithm=key.algorithm,
                           headers={"kid": key.kid})
        self.ring.note_signed(key.kid, float(int(expires)))
        credential = IssuedCredential(
            jti=jti, kind=kind, network_id=network_id, subject=subject,
            issued_at=float(int(issued)), expires_at=float(int(expires)), kid=key.kid,
            device_id=device_id, cert_sha256=cert_sha256,
        )
        return token, credential

    async def issue_admin(
        self, network_id: str, username: str, role: str, ttl: float,
        cert_sha256: str | None = None,
    ) -> tuple[str, IssuedCredential]:
        """An admin token, sealed into its record so that its holder can retrieve it."""
        token, credential = await self.issue(
            kind="admin", network_id=network_id, subject=username, ttl=ttl, role=role,
            cert_sha256=cert_sha256,
        )
        sealed = self.sealer.seal(token.encode(), f"admin-token:{credential.jti}")
        return token, dataclasses.replace(credential, sealed_token=sealed)

    def unseal_admin(self, jti: str, sealed: str) -> str:
        return self.sealer.unseal(sealed, f"admin-token:{jti}").decode()

    # -- verify ---------------------------------------------------------------------

    @property
    def leeway(self) -> float:
        return self._leeway

    def decode(self, token: str) -> Claims:
        """Claims of a token whose signature and shape are sound, cached until it expires;
        GatewayError "Invalid token" else. Expiry, revocation and the rest of what can
        change after issue are decided by gateway.auth.decision."""
        claims = self.cache.get(token)
        if claims is None:
            claims = self._decode(token)
            self.cache.put(token, claims, claims.exp + self._leeway)
        return claims

    def issued_here(self, token: str) -> bool:
        """Whether `token` names one of the gateway's keys (signature not checked): cheap
        enough to decide that a bearer on a public route is never forwarded."""
        if self.cache.get(token) is not None:
            return True
        if token.count(".") != 2 or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            return False
        kid = _remembered_kid(token.partition(".")[0])
        return kid is not None and self.ring.verifier(kid) is not None

    async def verify(self, token: str) -> Claims:
        """Claims of a valid token; GatewayError "token expired" or "Invalid token" else."""
        claims = self.decode(token)
        if claims.exp + self._leeway < self._clock():
            raise token_expired()
        if self.state.is_revoked(claims.jti):
            raise invalid_token()
        grace_end = self.state.superseded.get(claims.jti)
        if grace_end is not None and grace_end < self._clock():
            raise invalid_token()
        return claims

    def _decode(self, token: str) -> Claims:
        if (not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2
                or not token.isascii()):  # base64url and dots; bytes not UTF-8 cannot be parsed
            raise invalid_token()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token() from None
        key = self.ring.verifier(header.get("kid"))
        # The algorithm is the key's, from configuration; the header must merely agree.
        if key is None or header.get("alg") != key.algorithm or key.algorithm not in (
            self._algorithms
        ):
            raise invalid_token()
        if set(header) - {"alg", "kid", "typ"}:
            raise invalid_token()  # jku, x5u, jwk, crit ...: nothing else is honoured
        if token_is_high_s(key.algorithm, token):
            raise invalid_token()  # the twin of a valid signature: not what we signed
        try:
            payload = jwt.decode(
                token, key.public_key, algorithms=[key.algorithm],
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False,
                         "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise invalid_token() from None
        iss = payload["iss"]
        if not isinstance(iss, str) or iss not in self._issuers:  # the current or the old one
            raise invalid_token()
        claims = _claims(payload, key.kid, key.retired_at)
        self._check_times(claims)
        return claims

    def _check_times(self, claims: Claims) -> None:
        """Refuse what the gateway cannot have issued: a lifetime longer than any it gives
        the token's kind, or an issue time in the future."""
        if claims.exp - claims.iat > self._lifetimes().of(claims.kind) + self._leeway:
            raise invalid_token()
        if claims.iat > self._clock() + self._leeway:
            raise invalid_token()


def _claims(payload: dict[str, Any], kid: str, retired_at: float | None) -> Claims:
    # What repeats across tokens (and, signed by us, comes from a small set) is interned:
    # one string each for every cached token of a network.
    try:
        claims = Claims(
            sub=_text(payload["sub"]), nid=sys.intern(_text(payload["nid"])),
            kind=sys.intern(_text(payload["kind"])),
            jti=_text(payload["jti"]), iat=_number(payload["iat"]),
            exp=_number(payload["exp"]), kid=kid,
            did=_text(payload["did"]) if "did" in payload else None,
            role=sys.intern(_text(payload["role"])) if "role" in payload else None,
            iss=sys.intern(_text(payload["iss"])),
            cert_sha256=parse_cnf(payload["cnf"]) if "cnf" in payload else None,
        )
    except (TypeError, ValueError):
        raise invalid_token() from None
    if claims.kind not in KINDS or (claims.kind == "admin" and not claims.role):
        raise invalid_token()
    if retired_at is not None and claims.iat > retired_at:
        raise invalid_token()  # signed after its key was retired: not by us
    return claims


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError("not a short string")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise ValueError("not a finite number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")  # an `exp` of NaN or Infinity never expires
    return number


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


__all__ = ["Claims", "GatewayError", "TokenService", "bearer_token"]


MAX_HEADER_SEGMENT = 512  # the gateway's own are under 100 characters


def _header_kid(segment: str) -> str | None:
    """The `kid` a JWT's header segment (base64url JSON) names; None if none or not one."""
    if len(segment) > MAX_HEADER_SEGMENT:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # as PyJWT's own parsing
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


# A key's tokens share one header segment: decoding it once per key, not once per
# request, keeps a bearer on a public route (the SDK sends one everywhere) as cheap as
# none. Bounded: a client sending made-up headers only churns it.
_remembered_kid = functools.lru_cache(maxsize=1024)(_header_kid)

"""Access and admin tokens: JWTs issued and verified by the gateway.

Verification is the hot path. A token's signature and claims are checked once and the
result cached in memory until the token expires; what can change after
issue (revocation, supersession, bans) is looked up in the in-memory AuthState. So a
request with a known token costs two dictionary lookups, never a database round trip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
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


class VerifiedCache:
    """Verified claims by token, bounded; an entry is never used past its token's expiry.

    A plain dict: aiocache's memory cache measured 10 µs per lookup here (its decorator
    stack reads os.environ on every call) against 0.06 µs, 5% of a proxied request.
    When full, expired entries go first; if that frees too little, it starts over.
    """

    def __init__(self, max_entries: int = CACHE_ENTRIES, clock: Callable[[], float] = time.time):
        self._entries: dict[str, tuple[Claims, float]] = {}
        self._max = max_entries
        self._clock = clock

    def get(self, token: str) -> Claims | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, until = entry
        if until < self._clock():
            del self._entries[token]
            return None
        return claims

    def put(self, token: str, claims: Claims, until: float) -> None:
        if until <= self._clock():
            return
        if len(self._entries) >= self._max:
            now = self._clock()
            self._entries = {t: e for t, e in self._entries.items() if e[1] >= now}
            if len(self._entries) >= self._max // 2:
                self._entries.clear()
        self._entries[token] = (claims, until)

    def __len__(self) -> int:
        return len(self._entries)

    def prune(self) -> int:
        """Drop expired entries (periodically, so memory follows live tokens); how many."""
        now = self._clock()
        before = len(self._entries)
        self._entries = {t: e for t, e in self._entries.items() if e[1] >= now}
        return before - len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


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
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return False
        return isinstance(kid, str) and self.ring.verifier(kid) is not None

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
    try:
        claims = Claims(
            sub=_text(payload["sub"]), nid=_text(payload["nid"]), kind=_text(payload["kind"]),
            jti=_text(payload["jti"]), iat=_number(payload["iat"]),
            exp=_number(payload["exp"]), kid=kid,
            did=_text(payload["did"]) if "did" in payload else None,
            role=_text(payload["role"]) if "role" in payload else None,
            iss=_text(payload["iss"]),
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

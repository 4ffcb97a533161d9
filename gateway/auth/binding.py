"""Certificate-bound credentials (RFC 8705): which certificate a credential issued now is
bound to, and the `cnf` claim's spelling of it.

Inside the gateway a certificate is its SHA-256 fingerprint in hex (what the TLS gate
puts in `RequestInfo.client_cert` and the store keeps); RFC 8705's `x5t#S256` is the
same digest in unpadded base64url. Only the token's `cnf` claim and the introspection
answer use that spelling, so it is converted at those two edges and nowhere else.
"""

from __future__ import annotations

import base64
import string

from gateway.auth.state import AuthState

CNF_MEMBER = "x5t#S256"
_DIGEST_BYTES = 32
_THUMBPRINT_CHARS = 43  # 32 bytes in base64url without padding
_BASE64URL = frozenset(string.ascii_letters + string.digits + "-_")


def thumbprint(fingerprint: str) -> str:
    """RFC 8705's `x5t#S256` of a hex SHA-256 fingerprint."""
    return base64.urlsafe_b64encode(bytes.fromhex(fingerprint)).rstrip(b"=").decode("ascii")


def fingerprint_of(value: str) -> str:
    """The hex fingerprint an `x5t#S256` names; ValueError unless it is the canonical
    unpadded base64url of exactly 32 bytes (one spelling per certificate, so two tokens
    bound to one certificate always compare equal)."""
    if len(value) != _THUMBPRINT_CHARS or not _BASE64URL.issuperset(value):
        raise ValueError("x5t#S256 must be 43 base64url characters")
    digest = base64.urlsafe_b64decode(value + "=")
    if len(digest) != _DIGEST_BYTES or thumbprint(digest.hex()) != value:
        raise ValueError("x5t#S256 is not a canonical SHA-256 thumbprint")
    return digest.hex()


def cnf_claim(fingerprint: str) -> dict[str, str]:
    """The confirmation claim of a token bound to this certificate (RFC 8705 section 3.1)."""
    return {CNF_MEMBER: thumbprint(fingerprint)}


def parse_cnf(value: object) -> str:
    """The fingerprint a token's `cnf` binds it to; ValueError for anything but an object
    holding exactly a string `x5t#S256` (an unknown confirmation method cannot be
    checked, so it must not be ignored)."""
    if not isinstance(value, dict) or set(value) != {CNF_MEMBER}:
        raise ValueError("cnf must hold exactly x5t#S256")
    member = value[CNF_MEMBER]
    if not isinstance(member, str):
        raise ValueError("x5t#S256 must be a string")
    return fingerprint_of(member)


def bound_certificate(enabled: bool, client_cert: str | None, state: AuthState,
                      network_id: str, now: float) -> str | None:
    """The certificate a credential issued now to `network_id` is bound to: the request's,
    when `mtls.bind_tokens` is on and it is one of the network's current pins (a
    certificate the network never uploaded proves nothing about its holder)."""
    if not enabled or client_cert is None:
        return None
    not_after = state.pinned_until(network_id, client_cert)
    if not_after is None or now > not_after:
        return None
    return client_cert

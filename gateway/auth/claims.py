"""What a signature-checked token says (no I/O, no framework: the decision reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    nid: str
    kind: str
    jti: str
    iat: float
    exp: float
    kid: str
    did: str | None = None
    role: str | None = None
    iss: str | None = None
    # `cnf.x5t#S256` (RFC 8705) as a hex SHA-256, the spelling of `RequestFacts.client_cert`:
    # the token is valid only on a request presenting that certificate.
    cert_sha256: str | None = None

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

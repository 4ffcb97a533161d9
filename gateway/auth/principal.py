"""Who is calling: the identity a verified credential stands for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str  # the end user's userId, or the admin's username
    network_id: str
    kind: str  # "access" | "admin"
    role: str  # "user" for access tokens, else the console role
    token_id: str = ""
    expires_at: float = 0.0

    def identity_headers(self) -> dict[str, str]:
        """The X-Gateway-* headers an upstream receives for this caller."""
        return {
            "X-Gateway-User-Id": self.user_id,
            "X-Gateway-Network-Id": self.network_id,
            "X-Gateway-Token-Kind": self.kind,
            "X-Gateway-Role": self.role,
        }

"""Who is calling: the identity a verified credential stands for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str  # the end user's userId, or the admin's username ("" for a server key)
    network_id: str
    kind: str  # "access" | "admin" | "server"
    role: str  # "user" for access tokens, "server" for server keys, else the console role
    token_id: str = ""
    expires_at: float = 0.0
    # "access_token" | "admin_token" | "console_session" | "server_key"
    credential: str = "access_token"
    grace_end: float | None = None  # a superseded admin token: when its grace ends
    session_id: str = ""  # a console session: the stored hash of its cookie
    kid: str = ""  # the key that signed the token (a key revocation ends its connections)

    def identity_headers(self) -> dict[str, str]:
        """The X-Gateway-* headers an upstream receives for this caller."""
        return {
            "X-Gateway-User-Id": self.user_id,
            "X-Gateway-Network-Id": self.network_id,
            "X-Gateway-Token-Kind": self.kind,
            "X-Gateway-Role": self.role,
        }

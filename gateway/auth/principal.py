"""Who is calling: the identity a verified credential stands for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, init=False)
class Principal:
    user_id: str  # the end user's userId, or the admin's username ("" for a server key)
    network_id: str
    kind: str  # "access" | "admin" | "server"
    role: str  # "user" for access tokens, "server" for server keys, else the console role
    token_id: str
    expires_at: float
    # "access_token" | "admin_token" | "console_session" | "server_key"
    credential: str
    grace_end: float | None  # a superseded admin token: when its grace ends
    session_id: str  # a console session: the stored hash of its cookie
    kid: str  # the key that signed the token (a key revocation ends its connections)

    # __init__ written out (init=False): the compiled build runs it natively, where a
    # dataclass's generated one stays interpreted, several times slower per request.
    def __init__(self, user_id: str, network_id: str, kind: str, role: str,
                 token_id: str = "", expires_at: float = 0.0,
                 credential: str = "access_token", grace_end: float | None = None,
                 session_id: str = "", kid: str = "") -> None:
        object.__setattr__(self, "user_id", user_id)
        object.__setattr__(self, "network_id", network_id)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "token_id", token_id)
        object.__setattr__(self, "expires_at", expires_at)
        object.__setattr__(self, "credential", credential)
        object.__setattr__(self, "grace_end", grace_end)
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "kid", kid)

    def identity_headers(self) -> dict[str, str]:
        """The X-Gateway-* headers an upstream receives for this caller."""
        return {
            "X-Gateway-User-Id": self.user_id,
            "X-Gateway-Network-Id": self.network_id,
            "X-Gateway-Token-Kind": self.kind,
            "X-Gateway-Role": self.role,
        }

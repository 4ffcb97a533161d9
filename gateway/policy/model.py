"""The policy vocabulary: what a rule says, and how console roles relate to each other."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.policy.paths import normalize_host


class PolicyError(ValueError):
    """A policy file or rule set is unusable; the message names the file, the rule and the field."""


class Auth(enum.StrEnum):
    """Which credential a route needs."""

    PUBLIC = "public"
    ACCESS_TOKEN = "access_token"
    ADMIN_TOKEN = "admin_token"
    ANY_TOKEN = "any_token"
    DENY = "deny"
    # MQTT over WebSocket: the access token is the CONNECT packet's password, checked
    # by the gateway before the broker is connected to (the upgrade itself is public).
    MQTT_CONNECT = "mqtt_connect"
    # The network's server key in `x-server-key` (the customer's own server calling).
    SERVER_KEY = "server_key"
    # Either: the server key when `x-server-key` is sent, else an admin credential
    # (admin token or console session) checked like `admin_token`.
    SERVER_KEY_OR_ADMIN = "server_key_or_admin"
    # Either: the server key when `x-server-key` is sent, else any credential checked like
    # `any_token` (RFC 7009 revocation: a token's holder, an admin or the network's server).
    SERVER_KEY_OR_TOKEN = "server_key_or_token"


SERVER_KEY_WHEN_SENT = frozenset({Auth.SERVER_KEY_OR_ADMIN, Auth.SERVER_KEY_OR_TOKEN})
"""Rules that take the server key when `x-server-key` is sent, another credential else."""


CONSOLE_ROLES: tuple[str, ...] = ("moderator", "admin", "super-admin")
"""Console roles, weakest first: each one includes every role before it."""

USER_ROLE = "user"
"""End users (access tokens); outside the console hierarchy."""

ROLES: tuple[str, ...] = ("super-admin", "admin", "moderator", USER_ROLE)

HTTP_METHODS: tuple[str, ...] = (
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "CONNECT",
    "TRACE",
)
"""Accepted in `match.methods`: a closed list so that a typo such as `GTE` is an error."""


def role_allows(required: tuple[str, ...], role: str) -> bool:
    """True when `role` satisfies a rule's `roles` (empty = any role).

    `roles: [admin]` admits admin and super-admin; `roles: [user]` admits only end users.
    """
    if not required or role in required:
        return True
    if role not in CONSOLE_ROLES:
        return False
    rank = CONSOLE_ROLES.index(role)
    return any(r in CONSOLE_ROLES and CONSOLE_ROLES.index(r) <= rank for r in required)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One compiled policy rule. `index` is its global precedence: lowest wins."""

    name: str
    path: str
    auth: Auth
    methods: frozenset[str] | None = None
    hosts: frozenset[str] | None = None
    roles: tuple[str, ...] = ()
    # Roles refused even when `roles` admits them (super admins may not rotate a token).
    exclude_roles: tuple[str, ...] = ()
    # Query parameters that must be present for the rule to match (`?userId=`).
    query: frozenset[str] = frozenset()
    # Whether an admin token in its rotation grace may pass: ordinary calls yes, but not
    # reading or making credentials, nor revoking: a thief must not outlive a rotation.
    allow_superseded: bool = True
    mtls: bool = False
    # With `mtls`: the credentials pinning applies to; None = every credential. `mtls:
    # admin` in YAML pins admin tokens and console sessions and lets end users' access
    # tokens through (phones carry no client certificates).
    mtls_credentials: frozenset[str] | None = None
    # When the store has been unreachable past store.max_staleness, the in-memory token
    # state may miss revocations: refuse (503) unless the rule says `stale: serve`.
    serve_stale: bool = False
    source: str = "<memory>"
    index: int = 0

    def __post_init__(self) -> None:
        # Rules built in code (tests, tools) get the same spelling the loader produces, so
        # the matcher can compare with plain set membership.
        set_ = object.__setattr__
        set_(self, "auth", Auth(self.auth))
        if self.methods is not None:
            # HEAD is matched as GET (a HEAD is a GET without its body), so a rule written
            # for GET covers it and `HEAD` in a list adds nothing.
            methods = {m.upper() for m in self.methods}
            set_(self, "methods", frozenset("GET" if m == "HEAD" else m for m in methods))
        if self.hosts is not None:
            set_(self, "hosts", frozenset(normalize_host(h) for h in self.hosts))
        set_(self, "roles", tuple(self.roles))
        set_(self, "exclude_roles", tuple(self.exclude_roles))
        set_(self, "query", frozenset(self.query))

    def admits(self, role: str) -> bool:
        """Whether a principal with `role` passes this rule's `roles` and `exclude_roles`."""
        return role not in self.exclude_roles and role_allows(self.roles, role)

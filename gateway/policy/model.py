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
    mtls: bool = False
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
            set_(self, "methods", frozenset(m.upper() for m in self.methods))
        if self.hosts is not None:
            set_(self, "hosts", frozenset(normalize_host(h) for h in self.hosts))
        set_(self, "roles", tuple(self.roles))

    def admits(self, role: str) -> bool:
        """Whether a principal with `role` passes this rule's `roles`."""
        return role_allows(self.roles, role)

"""Whether the data plane forwards a parsed request itself: the same route table and the
same auth decision as the aiohttp path, on the same normalised request. A request whose
shape only the aiohttp path implements is handed off (None) and answered there; a
refusal of the decision is returned for the connection to answer with the contract's
error. This module never answers anything itself."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.decision import (
    NO_CREDENTIAL,
    Allowed,
    Credential,
    Refused,
    RequestFacts,
    decide,
)
from gateway.auth.gate import token_credential
from gateway.auth.principal import Principal
from gateway.auth.state import AuthState
from gateway.auth.tokens import TokenService, bearer_token
from gateway.dataplane.request import Head
from gateway.policy import Auth, Rule, UnsafePath, normalize_path
from gateway.policy.routes import Route
from gateway.proxy.headers import CONSOLE_COOKIE
from gateway.proxy.upstreams import RegionPool
from gateway.runtime import Settings

# Rules whose credential the data plane can read from the head alone.
_FAST_AUTH = frozenset({Auth.PUBLIC, Auth.ACCESS_TOKEN, Auth.ADMIN_TOKEN, Auth.ANY_TOKEN})


@dataclass(slots=True, init=False)
class Admitted:
    rule: Rule
    path: str  # normalised
    query: str  # raw, as sent
    host: str
    pool: RegionPool  # the upstreams of the region the Host names
    principal: Principal | None
    warning: str | None
    token: str | None  # the bearer presented, if any

    # __init__ written out (init=False): see gateway.auth.principal.Principal.
    def __init__(self, rule: Rule, path: str, query: str, host: str, pool: RegionPool,
                 principal: Principal | None, warning: str | None, token: str | None
                 ) -> None:
        self.rule = rule
        self.path = path
        self.query = query
        self.host = host
        self.pool = pool
        self.principal = principal
        self.warning = warning
        self.token = token


class RouteCache:
    """The rule a request line and Host lead to, remembered: normalising the path and
    matching the route table is a pure function of (settings, method, Host, target),
    and the same few are asked again and again. Bounded; emptied when full or when the
    settings change (a reload)."""

    MAX_ENTRIES = 10_000
    MAX_KEY = 512  # longer request lines are matched each time, not remembered

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._entries: dict[tuple[str, str, str], Routed | None] = {}

    def rule_for(self, settings: Settings, method: str, host: str, target: str
                 ) -> Routed | None:
        """Where a request the data plane may forward goes, None for one it hands off
        (refused, built-in, or not its kind of rule)."""
        if settings is not self._settings:
            self._settings = settings
            self._entries = {}
        if len(target) + len(host) > self.MAX_KEY:
            return _route(settings, method, host, target)  # memory stays bounded
        key = (method, host, target)
        try:
            return self._entries[key]
        except KeyError:
            pass
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries = {}
        found = self._entries[key] = _route(settings, method, host, target)
        return found


@dataclass(frozen=True, slots=True)
class Routed:
    rule: Rule
    path: str  # normalised
    query: str  # raw, as sent
    pool: RegionPool  # the region the Host names


def _route(settings: Settings, method: str, host: str, target: str) -> Routed | None:
    raw_path, _, query = target.partition("?")
    if "#" in query:
        return None
    try:
        path = normalize_path(raw_path, settings.path_options)
    except UnsafePath:
        return None
    route = settings.routes.match(method, host, path, query)
    if not isinstance(route, Route) or route.endpoint is not None:
        return None
    if route.rule.auth not in _FAST_AUTH:
        return None
    return Routed(route.rule, path, query,
                  settings.pools[settings.config.regions.for_host(host).name])


@dataclass(slots=True)
class Refusal:
    """A request the decision refused: answered here with the contract's error, as the
    aiohttp path answers it (the connection stays on the data plane)."""

    rule: Rule
    path: str  # normalised
    refused: Refused


def admit(head: Head, settings: Settings, tokens: TokenService, state: AuthState, *,
          client_cert: str | None, stale: str | None, routes: RouteCache
          ) -> Admitted | Refusal | None:
    """The admitted request, its refusal, or None to hand it off."""
    host = head.headers["Host"]
    routed = routes.rule_for(settings, head.method, host, head.target)
    if routed is None:
        return None
    rule = routed.rule
    if settings.cors.enabled and "Origin" in head.headers:
        return None  # CORS answers are the aiohttp path's
    token = bearer_token(head.headers.get("Authorization"))
    credential: Credential = NO_CREDENTIAL
    if rule.auth is not Auth.PUBLIC:
        if token is not None:
            credential = token_credential(tokens, token)
        elif CONSOLE_COOKIE in head.headers.get("Cookie", ""):
            return None  # a console session needs a store lookup and CSRF facts
    decision = decide(rule, credential, state, state.clock(), leeway=tokens.leeway,
                      facts=RequestFacts(head.method, client_cert),
                      stale=stale if not rule.serve_stale else None,
                      expiry_warning=settings.config.notices.expiry_warning)
    if isinstance(decision, Refused):
        return Refusal(rule, routed.path, decision)
    assert isinstance(decision, Allowed)
    return Admitted(rule, routed.path, routed.query, host, routed.pool, decision.principal,
                    decision.warning, token)

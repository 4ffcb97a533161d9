"""Whether the data plane forwards a parsed request itself: the same route table and the
same auth decision as the aiohttp path, on the same normalised request. A request
they would refuse, or one whose shape only the aiohttp path implements, is handed off
(None) and answered there; this module never answers anything itself."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.decision import NO_CREDENTIAL, Allowed, Credential, RequestFacts, decide
from gateway.auth.gate import token_credential
from gateway.auth.principal import Principal
from gateway.auth.state import AuthState
from gateway.auth.tokens import TokenService, bearer_token
from gateway.dataplane.request import Head
from gateway.policy import Auth, Rule, UnsafePath, normalize_path
from gateway.policy.routes import Route
from gateway.proxy.headers import CONSOLE_COOKIE
from gateway.runtime import Settings

# Rules whose credential the data plane can read from the head alone.
_FAST_AUTH = frozenset({Auth.PUBLIC, Auth.ACCESS_TOKEN, Auth.ADMIN_TOKEN, Auth.ANY_TOKEN})


@dataclass(frozen=True, slots=True)
class Admitted:
    rule: Rule
    path: str  # normalised
    query: str  # raw, as sent
    host: str
    principal: Principal | None
    warning: str | None
    token: str | None  # the bearer presented, if any


def admit(head: Head, settings: Settings, tokens: TokenService, state: AuthState, *,
          client_cert: str | None, stale: str | None) -> Admitted | None:
    """The admitted request, or None to hand it off."""
    raw_path, _, query = head.target.partition("?")
    if "#" in query:
        return None
    try:
        path = normalize_path(raw_path, settings.path_options)
    except UnsafePath:
        return None
    host = head.headers["Host"]
    route = settings.routes.match(head.method, host, path, query)
    if not isinstance(route, Route) or route.endpoint is not None:
        return None
    rule = route.rule
    if rule.auth not in _FAST_AUTH:
        return None
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
    if not isinstance(decision, Allowed):
        return None  # refusals are counted, logged and answered by the aiohttp path
    return Admitted(rule, path, query, host, decision.principal, decision.warning, token)

"""The credential check a policy rule asks for: request + rule -> Principal or an error."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.console_session import COOKIE, console_principal
from gateway.auth.mtls import require_pinned_certificate
from gateway.auth.principal import Principal
from gateway.auth.tokens import bearer_token
from gateway.errors import (
    GatewayError,
    invalid_token,
    permission_denied,
    unauthorized,
    unavailable,
)
from gateway.keys import AUTH_STATE, FEED, RUNTIME, TOKENS
from gateway.policy import Auth, Rule, role_allows
from gateway.proxy.headers import is_websocket_upgrade
from gateway.requestinfo import INFO
from gateway.timefmt import iso


def user_banned() -> GatewayError:
    return GatewayError(403, "User is global banned.", code=400312)


def request_token(request: web.Request) -> str | None:
    """The bearer token; on WebSocket upgrades `?token=` too (browsers cannot set headers)."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None and is_websocket_upgrade(request.headers):
        token = request.query.get("token")
    return token


def _refuse_when_stale(request: web.Request) -> None:
    """503 once the change feed has been unreadable for longer than the configured bound:
    a revocation made meanwhile elsewhere could not have reached this process."""
    staleness = request.app[FEED].staleness()
    bound = request.app[RUNTIME].current.config.store.max_staleness
    if staleness > bound:
        raise unavailable(
            f"token state is stale: the store has been unreachable for {staleness:.0f}s"
            f" (bound {bound:.0f}s)"
        )


async def authenticate(request: web.Request, rule: Rule) -> Principal | None:
    """None for public routes; else the caller, or the contract's 401/403."""
    if rule.auth is Auth.PUBLIC or rule.auth is Auth.MQTT_CONNECT:
        return None
    if not rule.serve_stale:
        _refuse_when_stale(request)
    token = request_token(request)
    if token is None:
        cookie = request.cookies.get(COOKIE)
        principal = await console_principal(request, cookie) if cookie else None
        if principal is None:
            raise unauthorized()
        if rule.auth is Auth.ACCESS_TOKEN:
            raise invalid_token()
        if rule.mtls:
            require_pinned_certificate(request, principal.network_id)
        if not role_allows(rule.roles, principal.role):
            raise permission_denied()
        return principal
    tokens = request.app[TOKENS]
    claims = await tokens.verify(token)
    grace_end = tokens.state.superseded.get(claims.jti)
    if grace_end is not None:
        request[INFO].warning = (
            f'299 gateway "admin token superseded; valid until {iso(grace_end)}"'
        )
    if rule.auth is Auth.ACCESS_TOKEN and claims.kind != "access":
        raise invalid_token()
    if rule.auth is Auth.ADMIN_TOKEN and claims.kind != "admin":
        raise permission_denied()
    principal = Principal(
        user_id=claims.sub,
        network_id=claims.nid,
        kind=claims.kind,
        role=claims.role if claims.kind == "admin" and claims.role else "user",
        token_id=claims.jti,
        expires_at=claims.exp,
    )
    if principal.kind == "access":
        if request.app[AUTH_STATE].is_banned(principal.network_id, principal.user_id):
            raise user_banned()
    elif rule.mtls:  # end users have no certificates: pinning is for admin credentials
        require_pinned_certificate(request, principal.network_id)
    if not role_allows(rule.roles, principal.role):
        raise permission_denied()
    return principal

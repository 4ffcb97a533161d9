"""The HTTP side of the auth decision: find the credential a request presents (the
I/O: signature check, console-session or server-key lookup), then ask
`gateway.auth.decision.decide` and turn a refusal into the contract's error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.auth.console_session import COOKIE, console_session
from gateway.auth.decision import (
    NO_CREDENTIAL,
    Allowed,
    BadCredential,
    ConsoleCredential,
    Credential,
    NoCredential,
    Reason,
    Refused,
    RequestFacts,
    ServerKeyCredential,
    TokenCredential,
    decide,
)
from gateway.auth.principal import Principal
from gateway.auth.secrets import hash_secret
from gateway.auth.tokens import TokenService, bearer_token
from gateway.cors import normalize_origin
from gateway.errors import GatewayError
from gateway.keys import AUTH_STATE, FEED, METRICS, STORE, TOKENS
from gateway.policy import Auth, Rule
from gateway.policy.model import SERVER_KEY_WHEN_SENT
from gateway.proxy.headers import is_websocket_upgrade
from gateway.requestinfo import INFO, RequestInfo, request_scheme
from gateway.runtime import Handler
from gateway.store.acting import ACTING, Caller, CallerNotLive
from gateway.store.db import StoreUnavailable

log = logging.getLogger("gateway.auth")

_UNCHECKED = (Auth.PUBLIC, Auth.DENY, Auth.MQTT_CONNECT)  # rules that read no credential


def refusal_error(refused: Refused) -> GatewayError:
    return GatewayError(refused.status, refused.message, code=refused.code)


def token_credential(tokens: TokenService, token: str) -> Credential:
    try:
        return TokenCredential(tokens.decode(token))
    except GatewayError:
        return BadCredential(Reason.MALFORMED)


async def presented_credential(request: web.Request, rule: Rule) -> Credential:
    """What the request offers for `rule`: a bearer token (on WebSocket upgrades also
    `?token=`, browsers cannot set headers there), else the console cookie; the server
    key for `auth: server_key` rules. Rules that need none look at nothing."""
    if rule.auth in _UNCHECKED:
        return NO_CREDENTIAL
    key = request.headers.get("x-server-key", "")
    if rule.auth is Auth.SERVER_KEY or (rule.auth in SERVER_KEY_WHEN_SENT and key):
        network = await request.app[STORE].network_by_server_key_hash(hash_secret(key)) \
            if key else None
        return ServerKeyCredential(network.id) if network else BadCredential(
            Reason.WRONG_SERVER_KEY)
    info = request[INFO]
    token = bearer_token(request.headers.get("Authorization"))
    if token is None and is_websocket_upgrade(request.headers):
        token = request.query.get("token")
        info.token_in_query = token is not None
    if token is not None:
        return token_credential(request.app[TOKENS], token)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return await console_session(request.app, cookie)
    return NO_CREDENTIAL


def request_facts(request: web.Request, info: RequestInfo) -> RequestFacts:
    scheme = request_scheme(request)
    origin = request.headers.get("Origin")
    return RequestFacts(
        method=request.method,
        client_cert=info.client_cert,
        upgrade=is_websocket_upgrade(request.headers),
        content_type=request.headers.get("Content-Type"),
        origin=normalize_origin(origin) or origin if origin is not None else None,
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        own_origin=normalize_origin(f"{scheme}://{request.host}"),
    )


def staleness_reason(request: web.Request, info: RequestInfo) -> str | None:
    return stale_state(request.app[FEED].staleness(), info.settings.config.store.max_staleness)


def stale_state(staleness: float, bound: float) -> str | None:
    """Why the in-memory token state cannot be trusted (the change feed unreadable past
    `store.max_staleness`: a revocation made elsewhere could be missing), else None."""
    if staleness <= bound:
        return None
    return (f"token state is stale: the store has been unreachable for {staleness:.0f}s"
            f" (bound {bound:.0f}s)")


# How long a built-in endpoint waits for the change feed before deciding on what this
# worker already knows (the staleness bound then applies, and writes check the caller
# again in their own transaction): a hung store must not hang the console.
FRESH_READ_TIMEOUT = 1.0


async def _read_feed_up_to_now(request: web.Request) -> None:
    try:
        async with asyncio.timeout(FRESH_READ_TIMEOUT):
            await request.app[FEED].catch_up()
    except (StoreUnavailable, TimeoutError):
        pass
    except Exception as exc:  # a bad entry or driver error: the tailer logs it in full
        log.warning("change feed read before a built-in endpoint failed: %r", exc)


def acting_caller(principal: Principal | None, rule: Rule, clock: Callable[[], float], *,
                  server_key: str, leeway: float, task: asyncio.Task[Any] | None
                  ) -> Caller | None:
    """The credential a built-in endpoint's writes check again (gateway/store/acting.py):
    a token, a console session or the server key (`server_key`: the header sent)."""
    if principal is None:
        return None
    if principal.credential == "console_session":
        return Caller(clock, task, session_id=principal.session_id)
    if principal.credential == "server_key":
        return Caller(clock, task, server_key_hash=hash_secret(server_key))
    if principal.token_id:
        return Caller(clock, task, token_id=principal.token_id, kid=principal.kid,
                      allow_superseded=rule.allow_superseded, leeway=leeway)
    return None


class RefusedLate(Exception):
    """The gate's refusal, given after the handler began: its credential ended since."""

    def __init__(self, refusal: GatewayError) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


async def run_admitted(request: web.Request, rule: Rule, handler: Handler
                       ) -> web.StreamResponse:
    """Run a built-in endpoint's handler with the caller's credential checked again by
    each write transaction it makes; if it ended since the gate admitted the request,
    RefusedLate carries the refusal the gate gives it now, and nothing was changed."""
    info = request[INFO]
    caller = acting_caller(
        info.principal, rule, request.app[AUTH_STATE].clock,
        server_key=request.headers.get("x-server-key", ""),
        leeway=request.app[TOKENS].leeway, task=asyncio.current_task())
    acting = ACTING.set(caller)  # reset below: the connection's next request is another's
    try:
        return await handler(request)
    except CallerNotLive:
        try:
            await authorize(request, rule, built_in=True)
        except GatewayError as refusal:
            raise RefusedLate(refusal) from None
        # The store said no, the gate's state does not know why yet (its feed read timed
        # out, say): never admit; the answer the credential's kind gets when refused.
        principal = info.principal
        info.refusal = Reason.NOT_LIVE.value
        request.app[METRICS].observe_refusal(rule.name, Reason.NOT_LIVE.value)
        session = principal is not None and principal.credential == "console_session"
        raise RefusedLate(refusal_error(Refused(
            Reason.NOT_LIVE, 401, "Unauthorized" if session else "Invalid token"))) from None
    finally:
        ACTING.reset(acting)


async def authorize(request: web.Request, rule: Rule, *, built_in: bool = False) -> None:
    """Enforce `rule` on the request: the caller's principal and `Warning` into the
    request's context, or the contract's 401/403/415/503 (the reason counted).

    `built_in`: the request is for one of the gateway's own endpoints, which read, make
    and end credentials. Those decide on the store's state as of the request's arrival,
    not on what the change feed has brought this worker so far: a token revoked a moment
    ago on another worker must not mint its successor here. Proxied requests keep the
    in-memory state (no store round trip on the hot path), stale within the feed's bound."""
    info = request[INFO]
    credential = await presented_credential(request, rule)
    state = request.app[AUTH_STATE]
    checked = rule.auth not in _UNCHECKED
    # Not for a credential refused without looking (garbage, none): nothing to refresh.
    if built_in and checked and not isinstance(credential, BadCredential | NoCredential):
        await _read_feed_up_to_now(request)
    # Only a console cookie needs the origin facts (CSRF): tokens skip the header reads.
    facts = (request_facts(request, info) if isinstance(credential, ConsoleCredential)
             else RequestFacts(request.method, info.client_cert))
    decision = decide(
        rule, credential, state, state.clock(),
        leeway=request.app[TOKENS].leeway, facts=facts,
        stale=staleness_reason(request, info) if checked and not rule.serve_stale else None,
        expiry_warning=info.settings.config.notices.expiry_warning,
    )
    if isinstance(decision, Refused):
        info.refusal = decision.reason.value
        info.warning = decision.warning
        request.app[METRICS].observe_refusal(rule.name, decision.reason.value)
        raise refusal_error(decision)
    assert isinstance(decision, Allowed)
    info.principal = decision.principal
    info.warning = decision.warning

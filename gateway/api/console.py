"""Console login and logout (API.md section 3): a cookie session standing for an admin."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import json_object, text_field
from gateway.api.caller import certificate_binding, network_for_api_key
from gateway.api.network import admin_token_ttl
from gateway.api.routes import endpoint
from gateway.api.sessions import SUCCESS
from gateway.auth.console_session import COOKIE, session_hash
from gateway.auth.passwords import hash_password
from gateway.auth.ratelimit import LoginAttempt
from gateway.errors import unauthorized
from gateway.keys import FEED, LOGIN_LIMITER, RUNTIME, STORE, TOKENS
from gateway.requestinfo import INFO, client_address
from gateway.store import Network, StoreUnavailable
from gateway.store.pending_audit import PendingAudit
from gateway.timefmt import iso

log = logging.getLogger("gateway.audit")
FAILED = "console.login_failed"

# Checked when the username is unknown, so both failures take the same time.
_DUMMY_HASH = hash_password("no such admin", log2_n=15)


async def login(request: web.Request) -> web.Response:
    app = request.app
    store, tokens, limiter = app[STORE], app[TOKENS], app[LOGIN_LIMITER]
    network = await network_for_api_key(request)
    body = await json_object(request)
    username = text_field(body, "username", max_length=100, required=True)
    password = text_field(body, "password", max_length=1024, required=True)
    assert username is not None and password is not None
    config = app[RUNTIME].current.config
    address = client_address(request)
    # The limits are checked before anything is hashed; the check itself waits its turn
    # in a bounded pool, and is skipped if the client has gone by then.
    async with limiter.attempt(LoginAttempt.of(network.id, username, address),
                               config.limits) as gate:
        admin = await store.admin_by_username(network.id, username)
        stored = admin.password_hash if admin else _DUMMY_HASH
        if not await gate.verify(password, stored, lambda: _connected(request)) \
                or admin is None:
            await gate.fail()
            await _audit_failure(request, network, username, address)
            raise unauthorized()
        await gate.succeed()

    cookie = secrets.token_urlsafe(32)
    bound = certificate_binding(request, network.id)
    async with audited(request, "console.login", username, network_id=network.id,
                       actor=username, actor_role=admin.role):
        current = await store.current_admin_token(network.id, username)
        if current is not None and current["sealed_token"]:
            token = tokens.unseal_admin(current["jti"], current["sealed_token"])
            issued_at, expires_at = current["issued_at"], current["expires_at"]
        else:  # never issued, revoked or expired: login generates one
            token, credential = await tokens.issue_admin(
                network.id, username, admin.role, admin_token_ttl(request, network), bound
            )
            await store.rotate_admin_token(credential, 0)
            issued_at, expires_at = credential.issued_at, credential.expires_at
        await store.create_console_session(
            session_hash(cookie), network.id, username, admin.role,
            store.clock() + config.console.session_ttl, bound,
        )
    response = web.json_response(_answer(token, issued_at, expires_at, admin.role))
    response.set_cookie(
        COOKIE, cookie, max_age=int(config.console.session_ttl), path="/", httponly=True,
        samesite="Strict", secure=cookie_secure(request),
    )
    return response


def cookie_secure(request: web.Request) -> bool:
    """Secure when the client reached us over HTTPS: directly, or through a trusted proxy
    that says so (API.md 4a); `console.cookie_secure: always` whatever the request."""
    settings = request.app[RUNTIME].current
    if settings.config.console.cookie_secure == "always" or request.secure:
        return True
    if not settings.trusted_proxies.trusts(request.remote):
        return False
    # The first proxy's word is the client's scheme: `https, http` was HTTPS at the edge.
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",", 1)[0].strip().lower() == "https"


def _connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _audit_failure(request: web.Request, network: Network, username: str,
                         address: str | None) -> None:
    """One audit entry per (username, address, minute), counting the failures in it."""
    now = request.app[STORE].clock()
    entry = PendingAudit(network.id, now, username, None, FAILED, username,
                         request[INFO].request_id, address)
    key = json.dumps([network.id, FAILED, username, address, int(now // 60)])
    try:
        await request.app[STORE].add_folded_audit(entry, key)
    except StoreUnavailable as exc:  # the answer stands: say so loudly, go on
        log.error("audit entry %s for %s not stored: %s", FAILED, username, exc)


def _answer(token: str, issued_at: float, expires_at: float, role: str) -> dict[str, Any]:
    return {"adminToken": token, "issuedAt": iso(issued_at), "expiresAt": iso(expires_at),
            "role": role}


async def logout(request: web.Request) -> web.Response:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        hashed = session_hash(cookie)
        await request.app[STORE].end_console_session(hashed)
        await request.app[FEED].catch_up()
    response = web.json_response(SUCCESS)
    response.del_cookie(COOKIE, path="/", secure=cookie_secure(request), samesite="Strict")
    return response


ENDPOINTS = (
    endpoint("POST", "/console/v1/login", login),
    endpoint("POST", "/console/v1/logout", logout),
)

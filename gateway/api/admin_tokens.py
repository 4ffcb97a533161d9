"""Admin tokens (API.md section 3): retrieve, rotate with a grace window, revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import json_object, text_field
from gateway.api.caller import caller, certificate_binding
from gateway.api.network import admin_token_ttl
from gateway.api.routes import endpoint
from gateway.api.sessions import SUCCESS
from gateway.auth.permissions import may_revoke_admin
from gateway.errors import not_found, permission_denied
from gateway.keys import FEED, RUNTIME, STORE, TOKENS
from gateway.notices import kinds
from gateway.notices.outbox import noticed
from gateway.timefmt import iso


def _token_json(token: str, issued_at: float, expires_at: float) -> dict[str, Any]:
    return {"adminToken": token, "issuedAt": iso(issued_at), "expiresAt": iso(expires_at)}


async def get_admin_token(request: web.Request) -> web.Response:
    principal = caller(request)
    store = request.app[STORE]
    row = await store.current_admin_token(principal.network_id, principal.user_id)
    # Read after the token: a revoke or rotation that raced the request and got in first
    # is seen here, and the caller gets the gate's refusal, not a token or a 404.
    await store.confirm_acting()
    if row is None or row["sealed_token"] is None:
        raise not_found("no admin token to retrieve: generate one")
    token = request.app[TOKENS].unseal_admin(row["jti"], row["sealed_token"])
    return web.json_response(_token_json(token, row["issued_at"], row["expires_at"]))


async def generate_admin_token(request: web.Request) -> web.Response:
    principal = caller(request)
    config = request.app[RUNTIME].current.config
    tokens = request.app[TOKENS]
    network = await request.app[STORE].get_network(principal.network_id)
    token, credential = await tokens.issue_admin(
        principal.network_id, principal.user_id, principal.role,
        admin_token_ttl(request, network),
        certificate_binding(request, principal.network_id),
    )
    async with audited(request, "admin_token.generate", principal.user_id), \
            noticed(request, kinds.admin_token_rotated(principal, credential)):
        superseded, revoked = await request.app[STORE].rotate_admin_token(
            credential, config.tokens.admin_rotation_grace
        )
    await request.app[FEED].catch_up()  # the old token's grace or end holds here at once
    answer = _token_json(token, credential.issued_at, credential.expires_at)
    # Not in the contract (docs/CONTRACT-NOTES.md): when the token the caller had stops
    # working, so the console can say so without holding that token. None: there was none.
    if superseded:
        answer["previousTokenValidUntil"] = iso(max(until for _jti, until in superseded))
    elif revoked:  # admin_rotation_grace 0: cut off at once
        answer["previousTokenValidUntil"] = iso(credential.issued_at)
    else:
        answer["previousTokenValidUntil"] = None
    return web.json_response(answer)


async def revoke_admin_token(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await json_object(request, optional=True)
    if "username" not in body and "username" in request.query:
        body = {"username": request.query["username"]}
    username = text_field(body, "username", max_length=100, required=True)
    assert username is not None
    store = request.app[STORE]
    target = await store.admin_by_username(principal.network_id, username)
    if target is None:
        raise not_found("username Not Found.")
    if not may_revoke_admin(principal.user_id, principal.role, username, target.role):
        raise permission_denied()
    async with audited(request, "admin_token.revoke", username), \
            noticed(request, kinds.admin_token_revoked(principal, username)):
        await store.revoke_admin(principal.network_id, username)
    await request.app[FEED].catch_up()
    return web.json_response(SUCCESS)


ENDPOINTS = (
    endpoint("GET", "/api/v1/admin-token", get_admin_token),
    endpoint("POST", "/api/v1/admin-token", generate_admin_token),
    endpoint("DELETE", "/api/v1/admin-token", revoke_admin_token),
)

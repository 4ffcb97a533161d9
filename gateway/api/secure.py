"""Secure mode (API.md section 3): server keys and the auth tokens they obtain."""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import json_object, text_field
from gateway.api.caller import caller
from gateway.api.sessions import hash_secret
from gateway.auth.mtls import require_pinned_certificate
from gateway.errors import forbidden, permission_denied, unauthorized
from gateway.keys import RUNTIME, STORE
from gateway.requestinfo import INFO
from gateway.store import Network
from gateway.timefmt import iso


def _secure_mode_off() -> Exception:
    return forbidden("secure mode is off for this network: turn useSecureAuthentication on")


async def _network_for_server_key(request: web.Request) -> Network:
    key = request.headers.get("x-server-key", "")
    network = await request.app[STORE].network_by_server_key_hash(hash_secret(key)) if key else None
    if network is None:
        raise unauthorized()
    if request[INFO].mtls:
        require_pinned_certificate(request, network.id)
    if not network.use_secure_authentication:
        raise _secure_mode_off()
    return network


async def _issue_auth_token(request: web.Request, network: Network, user_id: str) -> str:
    config = request.app[RUNTIME].current.config
    store = request.app[STORE]
    token = secrets.token_urlsafe(32)
    expires_at = store.clock() + config.tokens.auth_token_ttl
    await store.create_auth_token(hash_secret(token), network.id, user_id, expires_at)
    return token


async def auth_token_v3(request: web.Request) -> web.Response:
    network = await _network_for_server_key(request)
    user_id = text_field(dict(request.query), "userId", max_length=50, required=True)
    assert user_id is not None
    token = await _issue_auth_token(request, network, user_id)
    return web.Response(text=json.dumps(token), content_type="application/json")


async def auth_token_v4(request: web.Request) -> web.Response:
    network = await _network_for_server_key(request)
    body = await json_object(request)
    user_id = text_field(body, "userId", max_length=50, required=True)
    assert user_id is not None
    token = await _issue_auth_token(request, network, user_id)
    return web.Response(text=token, content_type="text/plain")


async def generate_server_key(request: web.Request) -> web.Response:
    principal = caller(request)
    if principal.role == "super-admin":  # the contract keeps this from super admins
        raise permission_denied()
    key = secrets.token_urlsafe(32)
    async with audited(request, "server_key.generate"):
        await request.app[STORE].set_server_key_hash(
            principal.network_id, hash_secret(key), principal.user_id
        )
    return web.json_response({"serverKey": key})


async def server_key_info(request: web.Request) -> web.Response:
    principal = caller(request)
    updated_at, updated_by = await request.app[STORE].server_key_info(principal.network_id)
    return web.json_response(
        {"updatedAt": iso(updated_at) if updated_at else None, "updatedBy": updated_by}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v3/authentication/token", auth_token_v3)
    app.router.add_post("/api/v4/authentication/token", auth_token_v4)
    app.router.add_post("/api/v3/networks/server-key", generate_server_key)
    app.router.add_get("/api/v3/networks/server-key", server_key_info)

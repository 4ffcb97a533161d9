"""Secure mode (API.md section 3): server keys and the auth tokens they obtain."""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import json_object, text_field
from gateway.api.caller import caller, certificate_binding
from gateway.api.routes import endpoint
from gateway.auth.secrets import hash_secret
from gateway.errors import forbidden
from gateway.keys import RUNTIME, STORE
from gateway.notices import kinds
from gateway.notices.outbox import noticed
from gateway.store import Network
from gateway.timefmt import iso


def _secure_mode_off() -> Exception:
    return forbidden("secure mode is off for this network: turn useSecureAuthentication on")


async def _network_for_server_key(request: web.Request) -> Network:
    """The network whose server key the request carried (the rule checked the key and,
    with mTLS on, the client certificate); secure mode must be on."""
    network = await request.app[STORE].get_network(caller(request).network_id)
    if network is None or not network.use_secure_authentication:
        raise _secure_mode_off()
    return network


async def _issue_auth_token(request: web.Request, network: Network, user_id: str) -> str:
    config = request.app[RUNTIME].current.config
    store = request.app[STORE]
    token = secrets.token_urlsafe(32)
    expires_at = store.clock() + config.tokens.auth_token_ttl
    await store.create_auth_token(hash_secret(token), network.id, user_id, expires_at,
                                  certificate_binding(request, network.id))
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
    key = secrets.token_urlsafe(32)
    async with audited(request, "server_key.generate"), \
            noticed(request, kinds.server_key_generated(principal)):
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


ENDPOINTS = (
    endpoint("GET", "/api/v3/authentication/token", auth_token_v3),
    endpoint("POST", "/api/v4/authentication/token", auth_token_v4),
    endpoint("POST", "/api/v3/networks/server-key", generate_server_key),
    endpoint("GET", "/api/v3/networks/server-key", server_key_info),
)

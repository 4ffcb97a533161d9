"""Network settings (API.md section 3): secure mode, the mTLS toggle, admin token lifetime."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import field_error, json_object
from gateway.api.caller import caller
from gateway.api.routes import endpoint
from gateway.auth.lifetimes import issued_lifetime
from gateway.errors import conflict, forbidden, not_found
from gateway.keys import FEED, RUNTIME, STORE
from gateway.notices import kinds
from gateway.notices.outbox import noticed
from gateway.store import Network

MAX_ADMIN_TOKEN_HOURS = 87600
NO_CERTIFICATE_WARNING = (
    "mTLS is on but the network has no certificate yet: create one, or the auth-token"
    " and admin-token calls will be refused"
)


def network_json(network: Network, admin_token_hours: int | None) -> dict[str, Any]:
    return {
        "networkId": network.id,
        "name": network.name,
        "region": network.region,
        "useSecureAuthentication": network.use_secure_authentication,
        "mtlsEnabled": network.mtls_enabled,
        "securityConfigs": {"adminToken": {"expiresInHours": admin_token_hours}},
    }


async def _network(request: web.Request) -> Network:
    network = await request.app[STORE].get_network(caller(request).network_id)
    if network is None:
        raise not_found("network Not Found.")
    return network


async def get_network(request: web.Request) -> web.Response:
    network = await _network(request)
    return web.json_response(network_json(network, network.admin_token_expires_hours))


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise field_error(name, "must be true or false")
    return value


async def update_network(request: web.Request) -> web.Response:
    network = await _network(request)
    body = await json_object(request)
    secure = _flag(body, "useSecureAuthentication")
    mtls = _flag(body, "mtlsEnabled")
    new_secure = network.use_secure_authentication if secure is None else secure
    new_mtls = network.mtls_enabled if mtls is None else mtls
    if new_mtls and not new_secure:
        if mtls:
            raise forbidden("mTLS needs secure mode: turn useSecureAuthentication on first")
        raise conflict("secure mode cannot be turned off while mTLS is on: turn mTLS off first")
    store = request.app[STORE]
    async with AsyncExitStack() as entries:
        if new_secure != network.use_secure_authentication:
            await entries.enter_async_context(
                audited(request, "network.secure_mode", "on" if new_secure else "off"))
        if new_mtls != network.mtls_enabled:
            await entries.enter_async_context(
                audited(request, "network.mtls", "on" if new_mtls else "off"))
        await entries.enter_async_context(noticed(request, kinds.network_switched(
            caller(request),
            secure=new_secure if new_secure != network.use_secure_authentication else None,
            mtls=new_mtls if new_mtls != network.mtls_enabled else None)))
        updated = await store.set_network_flags(network.id, secure=new_secure, mtls=new_mtls)
    assert updated is not None
    await request.app[FEED].catch_up()  # the mTLS flag holds here before the answer leaves
    answer = network_json(updated, updated.admin_token_expires_hours)
    if new_mtls and await store.certificate_count(network.id) == 0:
        answer["warnings"] = [NO_CERTIFICATE_WARNING]
    return web.json_response(answer)


async def update_security_configs(request: web.Request) -> web.Response:
    network = await _network(request)
    body = await json_object(request)
    admin_token = body.get("adminToken")
    if not isinstance(admin_token, dict):
        raise field_error("adminToken", "is required and must be an object")
    hours = admin_token.get("expiresInHours")
    if isinstance(hours, bool) or not isinstance(hours, int) or not (
        1 <= hours <= MAX_ADMIN_TOKEN_HOURS
    ):
        raise field_error(
            "adminToken.expiresInHours", f"must be an integer from 1 to {MAX_ADMIN_TOKEN_HOURS}"
        )
    async with audited(request, "security_configs.update", f"adminToken.expiresInHours={hours}"):
        await request.app[STORE].set_admin_token_hours(network.id, hours)
    return web.json_response({"adminToken": {"expiresInHours": hours}})


def admin_token_ttl(request: web.Request, network: Network | None) -> float:
    """The network's admin token lifetime if it set one, else the configured default."""
    tokens = request.app[RUNTIME].current.config.tokens
    return float(tokens.admin_token_ttl) if network is None else issued_lifetime(
        tokens, network, "admin")


ENDPOINTS = (
    endpoint("GET", "/api/v3/networks/me", get_network),
    endpoint("PUT", "/api/v3/networks/me", update_network),
    endpoint("PUT", "/api/v3/network-settings/security-configs", update_security_configs),
)

"""Client sessions (API.md section 3): log in, check, revoke; global bans."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import field_error, json_object, text_field
from gateway.api.caller import caller, network_for_api_key
from gateway.api.routes import endpoint, path_param
from gateway.auth.decision import Reason
from gateway.auth.lifetimes import issued_lifetime
from gateway.auth.principal import Principal
from gateway.auth.secrets import hash_secret
from gateway.errors import (
    GatewayError,
    invalid_token,
    not_found,
    unauthorized,
    user_banned,
)
from gateway.keys import FEED, METRICS, RUNTIME, STORE, TOKENS
from gateway.requestinfo import INFO
from gateway.store import User
from gateway.timefmt import iso

DEVICE_KINDS = ("ios", "android", "web", "node")
SUCCESS = {"success": True}


def user_not_found() -> GatewayError:
    return not_found("userId Not Found.")


def user_json(user: User) -> dict[str, Any]:
    return {
        "_id": user.id,
        # The SDK builds its MQTT topics from this (`<networkId>/user/<_id>`).
        "path": f"{user.network_id}/user/{user.id}",
        "userId": user.user_id,
        "displayName": user.display_name,
        "isGlobalBanned": user.is_global_banned,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


def _check_device_info(body: dict[str, Any]) -> None:
    info = body.get("deviceInfo")
    if info is None:
        return
    if not isinstance(info, dict):
        raise field_error("deviceInfo", "must be an object")
    kind = info.get("kind")
    if kind is not None and kind not in DEVICE_KINDS:
        raise field_error("deviceInfo.kind", f"must be one of {', '.join(DEVICE_KINDS)}")
    text_field(info, "model", max_length=500, min_length=0, where="deviceInfo.model")
    text_field(info, "sdkVersion", max_length=30, min_length=0, where="deviceInfo.sdkVersion")


async def create_session(request: web.Request) -> web.Response:
    app = request.app
    store, tokens = app[STORE], app[TOKENS]
    config = app[RUNTIME].current.config
    network = await network_for_api_key(request)
    body = await json_object(request)
    user_id = text_field(body, "userId", max_length=50, required=True)
    device_id = text_field(body, "deviceId", max_length=150, required=True)
    display_name = text_field(body, "displayName", max_length=100, min_length=0)
    auth_token = body.get("authToken")
    if auth_token is not None and not isinstance(auth_token, str):
        raise field_error("authToken", "must be a string")
    _check_device_info(body)
    assert user_id is not None and device_id is not None

    existing = await store.get_user(network.id, user_id)
    if existing is not None and existing.is_global_banned:
        raise user_banned()
    if network.use_secure_authentication:
        if not auth_token:
            raise unauthorized()
        # An auth token fetched with a certificate (mtls.bind_tokens) is redeemed with
        # it only; the access token it buys is not bound (end users' never are).
        result = await store.consume_auth_token(
            hash_secret(auth_token), network.id, user_id, config.tokens.leeway,
            request[INFO].client_cert,
        )
        if result == "expired":
            raise GatewayError(401, "token expired")
        if result == "unbound":
            _count_refusal(request, Reason.CERTIFICATE_BINDING)
        if result != "ok":
            raise invalid_token()
    user = await store.upsert_user(network.id, user_id, display_name)
    ttl = issued_lifetime(config.tokens, network, "access")
    token, credential = await tokens.issue(
        kind="access", network_id=network.id, subject=user_id, ttl=ttl, device_id=device_id
    )
    if await store.record_credential(credential, claim_device=True):
        await request.app[FEED].catch_up()  # the device's earlier tokens end here at once
    request[INFO].principal = Principal(
        user_id, network.id, "access", "user", credential.jti, credential.expires_at
    )
    return web.json_response({
        "accessToken": token,
        "issuedAt": iso(credential.issued_at),
        "expiresAt": iso(credential.expires_at),
        "users": [user_json(user)],
    })


def _count_refusal(request: web.Request, reason: Reason) -> None:
    """A refusal decided here rather than by the gate: logged and counted the same way."""
    info = request[INFO]
    info.refusal = reason.value
    request.app[METRICS].observe_refusal(info.route, reason.value)


async def verify_session(request: web.Request) -> web.Response:
    principal = caller(request)
    return web.json_response(
        {"valid": True, "userId": principal.user_id, "expiresAt": iso(principal.expires_at)}
    )


async def revoke_sessions(request: web.Request) -> web.Response:
    """The caller's own access token; with `?userId=` (a rule of its own, admins only)
    every token of that user."""
    if "userId" in request.query:
        return await revoke_user_sessions(request)
    principal = caller(request)
    await request.app[STORE].revoke_token(principal.network_id, principal.token_id)
    await request.app[FEED].catch_up()
    return web.json_response(SUCCESS)


async def revoke_user_sessions(request: web.Request) -> web.Response:
    """Every access token of a user: `?userId=` or the path's `{user_id}`, admins only."""
    principal = caller(request)
    info = request[INFO]
    user_id = info.params["user_id"] if "user_id" in info.params else request.query["userId"]
    store = request.app[STORE]
    if await store.get_user(principal.network_id, user_id) is None:
        raise user_not_found()
    async with audited(request, "sessions.revoke_user", user_id):
        await store.revoke_subject(principal.network_id, user_id, "access")
    await request.app[FEED].catch_up()
    return web.json_response(SUCCESS)


async def ban_user(request: web.Request) -> web.Response:
    principal = caller(request)
    banned = request.method == "POST"
    user_id = path_param(request, "user_id")
    async with audited(request, "user.ban" if banned else "user.unban", user_id):
        user = await request.app[STORE].set_banned(principal.network_id, user_id, banned)
        if user is None:
            raise user_not_found()
    await request.app[FEED].catch_up()
    return web.json_response(SUCCESS)


async def user_state(request: web.Request) -> web.Response:
    """`GET /api/v3/users/{userId}/ban`: the user and its ban state, for the console.
    Not `GET /api/v3/users/{userId}`: that path is the platform's own user API, which the
    SDK calls with access tokens, and a built-in endpoint there would never be forwarded.
    The gateway already owns this path (POST and DELETE ban), so nothing is shadowed."""
    principal = caller(request)
    user = await request.app[STORE].get_user(principal.network_id, path_param(request, "user_id"))
    if user is None:
        raise user_not_found()
    return web.json_response({"users": [user_json(user)]})


ENDPOINTS = (
    *(endpoint("POST", path, create_session) for path in (
        "/api/v3/sessions", "/api/v4/sessions", "/api/v5/sessions", "/api/v3/session")),
    endpoint("GET", "/api/v3/sessions", verify_session),
    endpoint("DELETE", "/api/v4/sessions", revoke_sessions),
    endpoint("DELETE", "/api/v4/sessions/users/{user_id}", revoke_user_sessions),
    endpoint("POST DELETE", "/api/v3/users/{user_id}/ban", ban_user),
    endpoint("GET", "/api/v3/users/{user_id}/ban", user_state),
)

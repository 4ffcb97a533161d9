"""Console login and logout (API.md section 3): a cookie session standing for an admin."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from gateway.api.audit import audit, audited
from gateway.api.body import json_object, text_field
from gateway.api.caller import network_for_api_key
from gateway.api.network import admin_token_ttl
from gateway.api.sessions import SUCCESS
from gateway.auth.console_session import COOKIE, session_hash
from gateway.auth.passwords import hash_password, verify_password
from gateway.errors import unauthorized
from gateway.keys import FEED, LOGIN_LIMITER, RUNTIME, STORE, TOKENS
from gateway.requestinfo import client_address
from gateway.timefmt import iso

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
    user_key, address_key = f"user:{network.id}:{username}", f"addr:{client_address(request)}"
    limiter.check(user_key, address_key)
    admin = await store.admin_by_username(network.id, username)
    stored = admin.password_hash if admin else _DUMMY_HASH
    if not await asyncio.to_thread(verify_password, password, stored) or admin is None:
        limiter.fail(user_key, address_key)
        await audit(request, "console.login_failed", username, network_id=network.id,
                    actor=username)
        raise unauthorized()
    limiter.succeed(user_key)

    config = app[RUNTIME].current.config
    cookie = secrets.token_urlsafe(32)
    async with audited(request, "console.login", username, network_id=network.id,
                       actor=username, actor_role=admin.role):
        current = await store.current_admin_token(network.id, username)
        if current is not None and current["sealed_token"]:
            token = tokens.unseal_admin(current["jti"], current["sealed_token"])
            issued_at, expires_at = current["issued_at"], current["expires_at"]
        else:  # never issued, revoked or expired: login generates one
            token, credential = await tokens.issue_admin(
                network.id, username, admin.role, admin_token_ttl(request, network)
            )
            await store.rotate_admin_token(credential, 0)
            issued_at, expires_at = credential.issued_at, credential.expires_at
        await store.create_console_session(
            session_hash(cookie), network.id, username, admin.role,
            store.clock() + config.console.session_ttl,
        )
    response = web.json_response(_answer(token, issued_at, expires_at, admin.role))
    response.set_cookie(
        COOKIE, cookie, max_age=int(config.console.session_ttl), path="/", httponly=True,
        samesite="Strict", secure=request.secure,
    )
    return response


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
    response.del_cookie(COOKIE, path="/")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/console/v1/login", login)
    app.router.add_post("/console/v1/logout", logout)

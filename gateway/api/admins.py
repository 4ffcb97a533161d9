"""The network's console users (the console's Settings > Admin Users page)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.caller import caller
from gateway.api.routes import endpoint
from gateway.keys import STORE
from gateway.timefmt import iso


async def list_admins(request: web.Request) -> web.Response:
    """`GET /api/v3/admins` [any console role]: `{"admins": [{username, role, createdAt}]}`
    of the caller's network, oldest first. Never a password hash or a token."""
    principal = caller(request)
    admins = await request.app[STORE].list_admins(principal.network_id)
    return web.json_response({
        "admins": [
            {"username": admin.username, "role": admin.role, "createdAt": iso(admin.created_at)}
            for admin in admins
        ]
    })


ENDPOINTS = (endpoint("GET", "/api/v3/admins", list_admins),)

"""The console cookie: what it is called and how a request's cookie becomes a principal."""

from __future__ import annotations

import hashlib

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.keys import AUTH_STATE, STORE

COOKIE = "gateway_console"


def session_hash(cookie: str) -> str:
    """Sessions are stored by the hash of the cookie: the store never holds a usable one."""
    return hashlib.sha256(cookie.encode()).hexdigest()


async def console_principal(request: web.Request, cookie: str) -> Principal | None:
    """The admin a console cookie stands for, or None (unknown, ended or expired)."""
    hashed = session_hash(cookie)
    state = request.app[AUTH_STATE]
    if hashed in state.ended_console_sessions:
        return None
    store = request.app[STORE]
    session = state.console_sessions.get(hashed)
    if session is None:
        row = await store.console_session(hashed)
        if row is None:
            return None
        session = (row["network_id"], row["username"], row["role"], float(row["expires_at"]))
        state.console_sessions[hashed] = session
    network_id, username, role, expires_at = session
    if expires_at < store.clock():
        return None
    return Principal(user_id=username, network_id=network_id, kind="admin", role=role,
                     expires_at=expires_at)

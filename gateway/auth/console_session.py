"""The console cookie: what it is called and how a request's cookie becomes a credential."""

from __future__ import annotations

import hashlib

from aiohttp import web

from gateway.auth.decision import BadCredential, ConsoleCredential, Reason
from gateway.keys import AUTH_STATE, STORE

COOKIE = "gateway_console"


def session_hash(cookie: str) -> str:
    """Sessions are stored by the hash of the cookie: the store never holds a usable one."""
    return hashlib.sha256(cookie.encode()).hexdigest()


async def console_session(app: web.Application, cookie: str) -> ConsoleCredential | BadCredential:
    """The session a console cookie stands for (read from the store once, then kept in
    memory); whether it has ended or expired is the decision's to say."""
    hashed = session_hash(cookie)
    state = app[AUTH_STATE]
    session = state.console_sessions.get(hashed)
    if session is None:
        if hashed in state.ended_console_sessions:
            return BadCredential(Reason.SESSION_ENDED)
        row = await app[STORE].console_session(hashed)
        if row is None:
            return BadCredential(Reason.SESSION_ENDED)
        session = (row["network_id"], row["username"], row["role"], float(row["expires_at"]),
                   row["cert_sha256"])
        state.console_sessions[hashed] = session
    network_id, username, role, expires_at, cert_sha256 = session
    return ConsoleCredential(hashed, network_id, username, role, expires_at, cert_sha256)

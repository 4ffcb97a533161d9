"""The credential a request acts with, checked again by each write transaction it makes.

The gate admits a request before its body has arrived, and a body may trickle in for a
long time; meanwhile the caller's token can be revoked, superseded or expire, or their
console session end. Every write transaction of the request (the same asyncio task: a
context variable, like the pending audit entries) first checks, under the store's write
lock, that the credential is still live, and changes nothing when it is not: a
credential revoked a moment ago cannot sign a certificate, mint a token or change a
setting however the two race. Both SQL backends call `check_acting` right after BEGIN.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from gateway.store.db import Queries


@dataclass(frozen=True)
class Caller:
    """A token (its id and signing key; access or admin), a console session (the hash of
    its cookie), or a server key's hash. `allow_superseded`: whether the request's rule
    admits an admin token in its rotation grace; `leeway`: the gate's, past a token's
    expiry. `task`: the request's own; tasks it starts inherit the context variable, but
    their writes are not the request's and are not checked."""

    clock: Callable[[], float]
    task: asyncio.Task[Any] | None
    token_id: str = ""
    kid: str = ""
    session_id: str = ""
    server_key_hash: str = ""
    allow_superseded: bool = True
    leeway: float = 0.0


class CallerNotLive(Exception):
    """The credential acting was revoked, superseded, expired, ended or replaced since
    the gate admitted the request."""


ACTING: ContextVar[Caller | None] = ContextVar("gateway_acting_caller", default=None)


async def check_acting(queries: Queries) -> None:
    """Raise CallerNotLive when the request's credential has stopped being live. Called
    with the transaction's own queries; outside one, with the database (never both: the
    SQLite connection's lock is not re-entrant)."""
    caller = ACTING.get()
    if caller is not None and caller.task is asyncio.current_task():
        await ensure_live(queries, caller)


async def ensure_live(queries: Queries, caller: Caller) -> None:
    now = caller.clock()
    if caller.session_id:
        row = await queries.fetchrow(
            "SELECT 1 AS live FROM console_sessions WHERE id = $1 AND ended_at IS NULL"
            " AND expires_at >= $2", caller.session_id, now,
        )
        if row is None:
            raise CallerNotLive("console session ended")
    if caller.server_key_hash:
        row = await queries.fetchrow(
            "SELECT 1 AS live FROM networks WHERE server_key_hash = $1", caller.server_key_hash)
        if row is None:
            raise CallerNotLive("server key replaced")
    if caller.token_id:
        row = await queries.fetchrow(
            "SELECT c.revoked_at, c.grace_until, c.expires_at, k.revoked_at AS key_revoked_at"
            " FROM credentials c LEFT JOIN signing_keys k ON k.kid = $2 WHERE c.jti = $1",
            caller.token_id, caller.kid,
        )
        # No row: a token the store never recorded. Every token the gateway hands out is
        # recorded first, so it is forged (a leaked signing key) or from another store.
        if row is None or row["key_revoked_at"] is not None or not token_live(
                row["revoked_at"], row["grace_until"], float(row["expires_at"]), now,
                allow_superseded=caller.allow_superseded, leeway=caller.leeway):
            raise CallerNotLive("token revoked, superseded, expired or unknown")


def token_live(revoked_at: float | None, grace_until: float | None, expires_at: float,
               now: float, *, allow_superseded: bool, leeway: float) -> bool:
    """As the gate decides (gateway/auth/decision.py): expired past the leeway, a grace
    window over, or one the rule does not admit."""
    if revoked_at is not None or expires_at + leeway < now:
        return False
    if grace_until is None:
        return True
    return allow_superseded and grace_until >= now

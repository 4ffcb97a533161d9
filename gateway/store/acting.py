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

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from gateway.store.db import Queries


@dataclass(frozen=True)
class Caller:
    """A token's id (access or admin), a console session's id (the hash of its cookie),
    or a server key's hash. `allow_superseded`: whether the request's rule admits an
    admin token in its rotation grace."""

    clock: Callable[[], float]
    token_id: str = ""
    session_id: str = ""
    server_key_hash: str = ""
    allow_superseded: bool = True


class CallerNotLive(Exception):
    """The credential acting was revoked, superseded, expired, ended or replaced since
    the gate admitted the request."""


ACTING: ContextVar[Caller | None] = ContextVar("gateway_acting_caller", default=None)


async def check_acting(queries: Queries) -> None:
    """Raise CallerNotLive when the request's credential has stopped being live."""
    caller = ACTING.get()
    if caller is not None:
        await ensure_live(queries, caller)


async def ensure_live(queries: Queries, caller: Caller) -> None:
    now = caller.clock()
    if caller.session_id:
        row = await queries.fetchrow(
            "SELECT 1 AS live FROM console_sessions WHERE id = $1 AND ended_at IS NULL"
            " AND expires_at > $2", caller.session_id, now,
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
            "SELECT revoked_at, grace_until, expires_at FROM credentials WHERE jti = $1",
            caller.token_id,
        )
        # No row: a token the store never recorded, which nothing can have revoked.
        if row is not None and not token_live(
                row["revoked_at"], row["grace_until"], float(row["expires_at"]), now,
                caller.allow_superseded):
            raise CallerNotLive("token revoked, superseded or expired")


def token_live(revoked_at: float | None, grace_until: float | None, expires_at: float,
               now: float, allow_superseded: bool) -> bool:
    if revoked_at is not None or expires_at <= now:
        return False
    if grace_until is None:
        return True
    return allow_superseded and grace_until > now

"""Recording admin actions, and `GET /api/v3/audit-logs` to page through them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from gateway.api.body import field_error
from gateway.api.caller import caller
from gateway.api.routes import endpoint
from gateway.keys import STORE
from gateway.requestinfo import INFO, client_address
from gateway.store import StoreUnavailable
from gateway.store.audit import AuditEntry
from gateway.store.pending_audit import PENDING, PendingAudit
from gateway.timefmt import iso

log = logging.getLogger("gateway.audit")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_FILTER = 200  # characters of an `action` or `actor` filter


def _entry(
    request: web.Request, action: str, target: str | None, *,
    network_id: str | None = None, actor: str | None = None, actor_role: str | None = None,
) -> PendingAudit | None:
    """The entry for an admin action; the actor is the caller unless given (failed logins)."""
    principal = request[INFO].principal
    network = network_id or (principal.network_id if principal else None)
    who = actor or (principal.user_id if principal else None)
    if network is None or who is None:
        return None
    return PendingAudit(
        network, request.app[STORE].clock(), who,
        actor_role or (principal.role if principal else None), action, target,
        request[INFO].request_id, client_address(request),
    )


@asynccontextmanager
async def audited(
    request: web.Request, action: str, target: str | None = None, **who: str | None
) -> AsyncIterator[None]:
    """Around the write an admin action makes: its entry commits in the same transaction,
    so no crash can leave one without the other. If the block wrote nothing, the entry is
    stored afterwards; if it raised, the action did not happen and nothing is recorded."""
    entry = _entry(request, action, target, **who)
    if entry is None:
        yield
        return
    pending = PENDING.set((*PENDING.get(), entry))
    try:
        yield
    finally:
        PENDING.reset(pending)
    if not entry.written:
        await _store(request, entry)


async def audit(
    request: web.Request, action: str, target: str | None = None, **who: str | None
) -> None:
    """Record an action that writes nothing else (a failed login)."""
    entry = _entry(request, action, target, **who)
    if entry is not None:
        await _store(request, entry)


async def _store(request: web.Request, entry: PendingAudit) -> None:
    try:
        await request.app[STORE].add_audit(entry)
    except StoreUnavailable as exc:  # the action itself is done: say so loudly, go on
        log.error("audit entry %s for %s not stored: %s", entry.action, entry.actor, exc)


def _int(request: web.Request, name: str, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    # isdigit() admits "²" and int() refuses over 4300 digits: ASCII, and short.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise field_error(name, f"must be an integer from {low} to {high}")
    return int(raw)


def _text(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_FILTER or not raw.isprintable():
        raise field_error(name, f"must be 1 to {MAX_FILTER} printable characters")
    return raw


def _entry_json(e: AuditEntry) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": e.id, "time": iso(e.time), "actor": e.actor, "actorRole": e.actor_role,
        "action": e.action, "target": e.target, "requestId": e.request_id,
        "sourceAddress": e.source_address,
    }
    if e.folded:  # failed logins fold per (username, address, minute): how many
        answer["count"] = e.count
    return answer


async def audit_logs(request: web.Request) -> web.Response:
    """One page, newest first; `action` and `actor` narrow it (API.md lists the page's
    shape; the filters are the gateway's own addition and keep it)."""
    principal = caller(request)
    limit = _int(request, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    before = _int(request, "before", 1, 2**62)
    entries = await request.app[STORE].audit_page(
        principal.network_id, limit, before,
        action=_text(request, "action"), actor=_text(request, "actor"))
    return web.json_response({
        "auditLogs": [_entry_json(e) for e in entries],
        "nextBefore": entries[-1].id if len(entries) == limit else None,
    })


ENDPOINTS = (endpoint("GET", "/api/v3/audit-logs", audit_logs),)

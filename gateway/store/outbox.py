"""Webhook notices that commit with the change they announce (the transactional outbox).

A handler declares what it will announce before its write
(`gateway.notices.outbox.noticed`). Feed events the store appends meanwhile are handed
to that declaration (`record_event`), and just before the request's write transaction
commits (`write_pending_notices`, called with the pending audit entries) it is turned
into outbox rows: one per subscription of the network that asked for the notice's kind.
A crash can therefore never leave a change without its notices, nor notices of a change
that did not happen; the delivery worker reads the rows afterwards.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from gateway.store.db import Queries
from gateway.store.events import Event
from gateway.timefmt import iso


@dataclass(frozen=True)
class Notice:
    kind: str
    network_id: str
    data: dict[str, Any]
    # Set for notices the periodic scan finds (one per subscription and key: a token and
    # its kind); None for notices of a change, which happen once by construction.
    key: str | None = None


# From the feed events appended in the transaction to the notices they make.
Build = Callable[[Sequence[Event]], list[Notice]]


@dataclass
class PendingNotices:
    build: Build
    time: float
    events: list[Event] = field(default_factory=list)
    written: bool = False
    queued: int = 0  # outbox rows inserted (0 when no subscription wanted them)


PENDING_NOTICES: ContextVar[tuple[PendingNotices, ...]] = ContextVar(
    "gateway_pending_notices", default=()
)


def record_event(event: Event) -> None:
    """A feed event appended by this request: its declared notices may depend on it."""
    for pending in PENDING_NOTICES.get():
        if not pending.written:
            pending.events.append(event)


async def write_pending_notices(tx: Queries) -> None:
    """Insert this request's declared notices in `tx`, just before it commits. A
    declaration that finds nothing to announce yet (its events were not appended) waits
    for the next transaction of the request."""
    for pending in PENDING_NOTICES.get():
        if pending.written:
            continue
        notices = pending.build(tuple(pending.events))
        if not notices:
            continue
        for notice in notices:
            pending.queued += len(await queue_notice(tx, notice, pending.time))
        pending.written = True


def new_delivery_id() -> str:
    """The delivery's idempotency id (`X-Gateway-Delivery`, the body's `id`)."""
    return f"dlv_{secrets.token_hex(12)}"


def notice_body(delivery_id: str, notice: Notice, now: float) -> str:
    """The JSON a receiver gets, fixed when the row is written: every retry sends the same
    bytes (only the timestamp and signature headers change)."""
    return json.dumps(
        {"id": delivery_id, "type": notice.kind, "networkId": notice.network_id,
         "createdAt": iso(now), "data": notice.data},
        separators=(",", ":"), sort_keys=True,
    )


async def queue_notice(
    tx: Queries, notice: Notice, now: float, *, subscription_id: str | None = None
) -> list[str]:
    """One outbox row per subscription of the notice's network that wants its kind (or for
    `subscription_id` alone, whatever it wants: a test event). Returns the delivery ids;
    a keyed notice already queued for a subscription is not queued again."""
    if subscription_id is None:
        rows = await tx.fetch(
            "SELECT id, events FROM webhook_subscriptions WHERE network_id = $1",
            notice.network_id,
        )
        targets = [row["id"] for row in rows if notice.kind in json.loads(row["events"])]
    else:
        targets = [subscription_id]
    queued = []
    for target in targets:
        delivery_id = new_delivery_id()
        key = f"{target}:{notice.key}" if notice.key is not None else None
        inserted = await tx.fetchrow(
            "INSERT INTO notice_outbox (id, subscription_id, network_id, kind, body,"
            " dedupe_key, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
            " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            delivery_id, target, notice.network_id, notice.kind,
            notice_body(delivery_id, notice, now), key, now,
        )
        if inserted is not None:
            queued.append(delivery_id)
    return queued

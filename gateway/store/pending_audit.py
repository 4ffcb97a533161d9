"""Audit entries that commit with the change they record.

A handler declares its entry before the write (`gateway.api.audit.audited`); the next
write transaction of the same request (the same asyncio task: a context variable) inserts
it before committing, so a crash between the two can no longer leave a change without
its entry. Both SQL backends call `write_pending` just before COMMIT.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from gateway.store.db import Queries
from gateway.store.outbox import write_pending_notices

INSERT_AUDIT = (
    "INSERT INTO audit_logs (network_id, time, actor, actor_role, action, target,"
    " request_id, source_address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)


@dataclass
class PendingAudit:
    network_id: str
    time: float
    actor: str
    actor_role: str | None
    action: str
    target: str | None
    request_id: str | None
    source_address: str | None
    written: bool = False

    def values(self) -> tuple[object, ...]:
        return (self.network_id, self.time, self.actor, self.actor_role, self.action,
                self.target, self.request_id, self.source_address)


PENDING: ContextVar[tuple[PendingAudit, ...]] = ContextVar("gateway_pending_audit", default=())


async def write_pending(tx: Queries) -> None:
    """Insert this request's declared, not yet written audit entries in `tx`, and its
    webhook notices (gateway/store/outbox.py): both commit with the change."""
    for entry in PENDING.get():
        if not entry.written:
            await tx.execute(INSERT_AUDIT, *entry.values())
            entry.written = True
    await write_pending_notices(tx)

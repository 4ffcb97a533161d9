"""The audit log: who did what to which network, from where. Never a secret."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.core import StoreCore
from gateway.store.pending_audit import INSERT_AUDIT, PendingAudit


@dataclass(frozen=True)
class AuditEntry:
    id: int
    network_id: str
    time: float
    actor: str
    actor_role: str | None
    action: str
    target: str | None
    request_id: str | None
    source_address: str | None
    count: int = 1  # attempts folded into this entry (failed logins, per minute)


class AuditQueries(StoreCore):
    async def add_audit(self, entry: PendingAudit) -> None:
        """Store an entry on its own (actions that write nothing else)."""
        async with self.db.transaction() as tx:
            await tx.execute(INSERT_AUDIT, *entry.values())
        entry.written = True

    async def audit_page(
        self, network_id: str, limit: int, before: int | None
    ) -> list[AuditEntry]:
        """Newest first; `before` is the id the previous page ended at."""
        rows = await self.db.fetch(
            "SELECT id, network_id, time, actor, actor_role, action, target, request_id,"
            " source_address, count FROM audit_logs WHERE network_id = $1 AND id < $2"
            " ORDER BY id DESC LIMIT $3",
            network_id, before if before is not None else 2**62, limit,
        )
        return [AuditEntry(**{**row, "id": int(row["id"]), "time": float(row["time"]),
                              "count": int(row["count"])})
                for row in rows]

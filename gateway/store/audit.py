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
    folded: bool = False  # an entry that counts attempts (`count`), not one action


class AuditQueries(StoreCore):
    async def add_audit(self, entry: PendingAudit) -> None:
        """Store an entry on its own (actions that write nothing else)."""
        async with self.db.transaction() as tx:
            await tx.execute(INSERT_AUDIT, *entry.values())
        entry.written = True

    async def audit_page(
        self, network_id: str, limit: int, before: int | None, *,
        action: str | None = None, actor: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; `before` is the id the previous page ended at. `action` keeps that
        action and those under it (`admin_token` keeps `admin_token.revoke`); `actor`
        keeps one actor's entries."""
        where = ["network_id = $1", "id < $2"]
        args: list[object] = [network_id, before if before is not None else 2**62]
        if action is not None:
            # substr, not LIKE: `_` in action names is a LIKE wildcard.
            prefix = action + "."
            args += [action, len(prefix), prefix]
            n = len(args)
            where.append(f"(action = ${n - 2} OR substr(action, 1, ${n - 1}) = ${n})")
        if actor is not None:
            args.append(actor)
            where.append(f"actor = ${len(args)}")
        args.append(limit)
        rows = await self.db.fetch(
            "SELECT id, network_id, time, actor, actor_role, action, target, request_id,"
            " source_address, count, aggregate_key IS NOT NULL AS folded FROM audit_logs"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        return [AuditEntry(**{**row, "id": int(row["id"]), "time": float(row["time"]),
                              "count": int(row["count"]), "folded": bool(row["folded"])})
                for row in rows]

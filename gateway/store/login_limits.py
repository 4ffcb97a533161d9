"""Console login failure counters and folded audit entries, in the store's database.

Each statement stands alone (autocommit): these rows are not part of the change feed, so
they skip the write transaction and its feed lock, and every process and instance on the
database sees the same counts at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.core import StoreCore
from gateway.store.pending_audit import PendingAudit

# One row per key, holding only its current window: a new window starts the count again.
_UPSERT_ROW = "($%d, $1, 1)"
_UPSERT_TAIL = (
    " ON CONFLICT (key) DO UPDATE SET"
    " count = CASE WHEN login_counters.window_start = excluded.window_start"
    " THEN login_counters.count + 1 ELSE 1 END,"
    " window_start = excluded.window_start"
)

_FOLD_AUDIT = (
    "INSERT INTO audit_logs (network_id, time, actor, actor_role, action, target,"
    " request_id, source_address, count, aggregate_key)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)"
    " ON CONFLICT (aggregate_key) DO UPDATE SET count = audit_logs.count + 1"
)


class LoginLimitQueries(StoreCore):
    async def login_counts(self, keys: Sequence[str], window_start: float) -> dict[str, int]:
        """The failures counted for each of `keys` in the window starting at `window_start`."""
        marks = ", ".join(f"${i}" for i in range(2, len(keys) + 2))
        rows = await self.db.fetch(
            f"SELECT key, count FROM login_counters WHERE window_start = $1 AND key IN ({marks})",
            window_start, *keys,
        )
        return {str(row["key"]): int(row["count"]) for row in rows}

    async def add_login_failure(self, keys: Sequence[str], window_start: float) -> None:
        """One more failure for each of `keys` (distinct), in one statement."""
        rows = ", ".join(_UPSERT_ROW % i for i in range(2, len(keys) + 2))
        await self.db.execute(
            f"INSERT INTO login_counters (key, window_start, count) VALUES {rows}{_UPSERT_TAIL}",
            window_start, *keys,
        )

    async def reset_login_counter(self, key: str) -> None:
        await self.db.execute("DELETE FROM login_counters WHERE key = $1", key)

    async def prune_login_counters(self, before: float) -> None:
        """Forget counters whose window started before `before`."""
        await self.db.execute("DELETE FROM login_counters WHERE window_start < $1", before)

    async def add_folded_audit(self, entry: PendingAudit, aggregate_key: str) -> None:
        """Store `entry`, or add one to the count of the entry already under `aggregate_key`.

        The unique index makes this exact across processes: two instances recording the
        same (username, address, minute) at once still leave one entry."""
        await self.db.execute(_FOLD_AUDIT, *entry.values(), aggregate_key)
        entry.written = True

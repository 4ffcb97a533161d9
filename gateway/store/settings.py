"""Per-network settings: one JSON value per (network, name)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gateway.store.core import StoreCore
from gateway.store.db import Queries
from gateway.store.events import SettingUpdated

# Portable upsert: the same text runs on SQLite and PostgreSQL.
_UPSERT = (
    "INSERT INTO settings (network_id, name, value, updated_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (network_id, name)"
    " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_SELECT = "SELECT value FROM settings WHERE network_id = $1 AND name = $2"


class SettingsQueries(StoreCore):
    async def get_setting(self, network_id: str, name: str) -> Any | None:
        """The stored value, decoded; None when the network never set it."""
        row = await self.db.fetchrow(_SELECT, network_id, name)
        return None if row is None else json.loads(row["value"])

    async def put_setting(self, network_id: str, name: str, value: Any) -> None:
        async with self.db.transaction() as tx:
            await self._write(tx, network_id, name, value)

    async def update_setting(
        self, network_id: str, name: str, change: Callable[[Any | None], Any]
    ) -> Any:
        """Read, `change` and write back in one transaction, so concurrent partial
        updates do not lose each other's fields; an exception in `change` writes nothing."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(_SELECT, network_id, name)
            value = change(None if row is None else json.loads(row["value"]))
            await self._write(tx, network_id, name, value)
        return value

    async def _write(self, tx: Queries, network_id: str, name: str, value: Any) -> None:
        encoded = json.dumps(value, separators=(",", ":"))
        await tx.execute(_UPSERT, network_id, name, encoded, self.clock())
        await self.append_event(tx, SettingUpdated(network_id, name))

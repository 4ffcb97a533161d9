"""The store's core: schema migrations and the change feed, for both SQL backends.

Every change that affects validation is appended to the change feed in the same
transaction as the change itself, so a tailer never sees one without the other.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway.store.acting import check_acting
from gateway.store.db import Database, Queries
from gateway.store.events import Event, encode
from gateway.store.models import Change
from gateway.store.outbox import record_event
from gateway.store.schema import MIGRATIONS, migration_statements

Clock = Callable[[], float]


class AlreadyExists(Exception):
    """A unique name (username, certificate name, ...) is taken."""


def new_id() -> str:
    """A 24-hex-digit identifier, the shape the platform's ids have."""
    return secrets.token_hex(12)


class StoreCore:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    @property
    def dialect(self) -> str:
        return self.db.dialect

    # -- schema ---------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply the migrations this database has not seen; return the schema version."""
        # Inside the write transaction: two processes starting together migrate one by one.
        async with self.db.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await tx.fetchrow("SELECT MAX(version) AS version FROM schema_version")
            current = int(row["version"]) if row and row["version"] is not None else 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in migration_statements(self.dialect, version):
                    await tx.execute(statement)
                await tx.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        return len(MIGRATIONS)

    async def schema_version(self) -> int:
        row = await self.db.fetchrow("SELECT MAX(version) AS version FROM schema_version")
        return int(row["version"]) if row and row["version"] is not None else 0

    async def ping(self) -> None:
        await self.db.fetchrow("SELECT 1 AS ok")

    async def confirm_acting(self) -> None:
        """CallerNotLive when the request's credential has stopped being live
        (gateway/store/acting.py): for reads that reveal a credential, as every write
        transaction checks it itself."""
        await check_acting(self.db)

    # -- change feed ----------------------------------------------------------------

    async def append_change(
        self, tx: Queries, kind: str, network_id: str | None, payload: dict[str, Any]
    ) -> int:
        row = await tx.fetchrow(
            "INSERT INTO change_feed (kind, network_id, payload, created_at)"
            " VALUES ($1, $2, $3, $4) RETURNING seq",
            kind,
            network_id,
            json.dumps(payload, separators=(",", ":")),
            self.clock(),
        )
        await self.db.notify_feed(tx)
        assert row is not None
        return int(row["seq"])

    async def append_event(self, tx: Queries, event: Event) -> int:
        """Append a typed feed event inside the caller's transaction."""
        record_event(event)  # webhook notices declared by the request may announce it
        return await self.append_change(tx, *encode(event))

    async def publish(self, kind: str, network_id: str | None, payload: dict[str, Any]) -> int:
        """Append one feed entry in a transaction of its own."""
        async with self.db.transaction() as tx:
            return await self.append_change(tx, kind, network_id, payload)

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        rows = await self.db.fetch(
            "SELECT seq, kind, network_id, payload, created_at FROM change_feed"
            " WHERE seq > $1 ORDER BY seq LIMIT $2",
            seq,
            limit,
        )
        return [
            Change(
                seq=int(row["seq"]),
                kind=row["kind"],
                network_id=row["network_id"],
                payload=json.loads(row["payload"]),
                created_at=float(row["created_at"]),
            )
            for row in rows
        ]

    async def latest_seq(self) -> int:
        row = await self.db.fetchrow("SELECT MAX(seq) AS seq FROM change_feed")
        return int(row["seq"]) if row and row["seq"] is not None else 0

    async def close(self) -> None:
        await self.db.close()



"""The store: the gateway's durable state, written once for both SQL backends.

Every change that affects validation is appended to the change feed in the same
transaction as the change itself, so a tailer never sees one without the other.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway.store.db import Database, Queries, Row
from gateway.store.models import Admin, Change, Network
from gateway.store.schema import MIGRATIONS, migration_statements

Clock = Callable[[], float]


class AlreadyExists(Exception):
    """A unique name (username, certificate name, ...) is taken."""


def new_id() -> str:
    """A 24-hex-digit identifier, the shape the platform's ids have."""
    return secrets.token_hex(12)


class Store:
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

    # -- networks -------------------------------------------------------------------

    async def create_network(self, name: str, region: str, secure: bool) -> Network:
        network = Network(
            id=new_id(),
            name=name,
            region=region,
            api_key=secrets.token_hex(24),
            use_secure_authentication=secure,
            mtls_enabled=False,
            created_at=self.clock(),
        )
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO networks (id, name, region, api_key, use_secure_authentication,"
                " mtls_enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                network.id,
                network.name,
                network.region,
                network.api_key,
                network.use_secure_authentication,
                network.mtls_enabled,
                network.created_at,
            )
            await self.append_change(tx, "network.created", network.id, {"region": region})
        return network

    async def get_network(self, network_id: str) -> Network | None:
        row = await self.db.fetchrow(f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE id = $1",
                                     network_id)
        return _network(row) if row else None

    async def network_by_api_key(self, api_key: str) -> Network | None:
        row = await self.db.fetchrow(
            f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE api_key = $1", api_key
        )
        return _network(row) if row else None

    async def list_networks(self) -> list[Network]:
        rows = await self.db.fetch(f"SELECT {_NETWORK_COLUMNS} FROM networks ORDER BY created_at")
        return [_network(row) for row in rows]

    # -- admins ---------------------------------------------------------------------

    async def create_admin(
        self, network_id: str, username: str, role: str, password_hash: str
    ) -> Admin:
        admin = Admin(
            id=new_id(),
            network_id=network_id,
            username=username,
            role=role,
            password_hash=password_hash,
            created_at=self.clock(),
        )
        async with self.db.transaction() as tx:
            taken = await tx.fetchrow(
                "SELECT id FROM admins WHERE network_id = $1 AND username = $2",
                network_id,
                username,
            )
            if taken:
                raise AlreadyExists(f"username {username!r} already exists in this network")
            await tx.execute(
                "INSERT INTO admins (id, network_id, username, role, password_hash, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                admin.id,
                admin.network_id,
                admin.username,
                admin.role,
                admin.password_hash,
                admin.created_at,
            )
        return admin

    async def admin_by_username(self, network_id: str, username: str) -> Admin | None:
        row = await self.db.fetchrow(
            "SELECT id, network_id, username, role, password_hash, created_at FROM admins"
            " WHERE network_id = $1 AND username = $2",
            network_id,
            username,
        )
        if row is None:
            return None
        return Admin(
            id=row["id"],
            network_id=row["network_id"],
            username=row["username"],
            role=row["role"],
            password_hash=row["password_hash"],
            created_at=float(row["created_at"]),
        )

    async def close(self) -> None:
        await self.db.close()


_NETWORK_COLUMNS = (
    "id, name, region, api_key, use_secure_authentication, mtls_enabled, created_at"
)


def _network(row: Row) -> Network:
    return Network(
        id=row["id"],
        name=row["name"],
        region=row["region"],
        api_key=row["api_key"],
        use_secure_authentication=bool(row["use_secure_authentication"]),
        mtls_enabled=bool(row["mtls_enabled"]),
        created_at=float(row["created_at"]),
    )

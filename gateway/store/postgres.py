"""PostgreSQL backend: an asyncpg pool, one schema per deployment (or per test run).

Feed order: a bigserial hands out numbers at insert time, not at commit time, so two
concurrent writers could commit seq 8 before seq 7 and a tailer that already read 8
would never see 7. Every write transaction therefore takes one transaction-scoped
advisory lock before it appends, which makes feed numbers commit in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from gateway.store.acting import check_acting
from gateway.store.db import Queries, Row, StoreUnavailable
from gateway.store.pending_audit import write_pending

log = logging.getLogger("gateway.store")

FEED_CHANNEL = "gateway_feed"
CLOSE_TIMEOUT = 5.0
FEED_LOCK_KEY = 0x6761_7465  # any constant shared by every gateway process
_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError, asyncpg.CannotConnectNowError)


class _Queries(Queries):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return [dict(row) for row in await self._conn.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row = await self._conn.fetchrow(sql, *args)
        return dict(row) if row is not None else None

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, pool: Any, dsn: str, schema: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._schema = schema
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, dsn: str, schema: str, pool_size: int) -> PostgresDatabase:
        settings = {"search_path": schema, "application_name": "gateway"}
        try:
            # The schema must exist before pooled connections use it as their search_path.
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            except asyncpg.UniqueViolationError:
                pass  # another instance created it at the same moment
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, server_settings=settings, timeout=5,
                command_timeout=10,
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool, dsn, schema)

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._pool.execute(sql, *args)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        try:
            return [dict(row) for row in await self._pool.fetch(sql, *args)]
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            row = await self._pool.fetchrow(sql, *args)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        return dict(row) if row is not None else None

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", FEED_LOCK_KEY)
                queries = _Queries(conn)
                await check_acting(queries)
                yield queries
                await write_pending(queries)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def notify_feed(self, tx: Queries) -> None:
        # NOTIFY is transactional: listeners are woken only when the entry is committed.
        await tx.execute("SELECT pg_notify($1, '')", FEED_CHANNEL)

    async def listen_feed(self, wake: Callable[[], None]) -> None:
        """Keep a dedicated LISTEN connection open, reconnecting after failures."""
        if self._listen_task is None:
            self._listen_task = asyncio.create_task(
                self._listen_forever(wake), name="gateway-feed-listen"
            )

    async def _listen_forever(self, wake: Callable[[], None]) -> None:
        def on_notify(*_args: Any) -> None:
            wake()

        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
            except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("feed listener cannot connect: %s", exc)
                await asyncio.sleep(1)
                continue
            self._listener = conn
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                await conn.add_listener(FEED_CHANNEL, on_notify)
                wake()  # catch up on anything appended while we were not listening
                await lost.wait()
            except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("feed listener lost: %s", exc)
            finally:
                self._listener = None
                if not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            await asyncio.wait([self._listen_task])
        try:
            # Graceful close waits for every connection to come back; a query cancelled
            # mid-flight can hold one up, so the wait is bounded.
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("PostgreSQL pool did not close in %.0fs; terminating", CLOSE_TIMEOUT)
            self._pool.terminate()

    async def drop_schema(self) -> None:
        """Remove this store's schema (tests give every run its own)."""
        await self._pool.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')

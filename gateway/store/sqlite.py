"""SQLite backend: one aiosqlite connection per process (its own thread), WAL mode.

Every statement runs on aiosqlite's worker thread, so nothing blocks the event loop.
One connection is shared by the process's coroutines, so an asyncio lock keeps a
transaction's statements from interleaving with another coroutine's. Writers use
`BEGIN IMMEDIATE`: the file's write lock is taken up front, which also makes feed
sequence numbers commit in order across processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.store.acting import check_acting
from gateway.store.db import Queries, Row, StoreUnavailable
from gateway.store.pending_audit import write_pending

log = logging.getLogger("gateway.store")

_PARAM = re.compile(r"\$(\d+)")
BUSY_TIMEOUT_MS = 5000
FILE_MODE = 0o600  # password hashes, sealed keys, server-key hashes: the owner's only
_COMPANIONS = ("-wal", "-shm")  # SQLite gives them the database file's mode


@lru_cache(maxsize=512)
def _to_sqlite(sql: str) -> str:
    """`$1` -> `?1`: SQLite binds numbered parameters by position."""
    return _PARAM.sub(r"?\1", sql)


class _Connection(Queries):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._conn.execute(_to_sqlite(sql), args)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(_to_sqlite(sql), rows)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        try:
            async with self._conn.execute(_to_sqlite(sql), args) as cursor:
                return [dict(row) for row in await cursor.fetchall()]
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None


def _owner_only_files(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 less the
    umask, and its -wal/-shm copy the database's mode), and take group and other access
    away from the file and its -wal/-shm when an older version left them open."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask took away
        finally:
            os.close(fd)
    for name in (path, *(path.with_name(path.name + suffix) for suffix in _COMPANIONS)):
        _tighten(name)


def _tighten(path: Path) -> None:
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except FileNotFoundError:
        pass
    except OSError as exc:  # another user's file: SQLite itself will say if it cannot open it
        log.warning("cannot restrict the mode of %s: %s", path, exc)


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._queries = _Connection(conn)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(_owner_only_files, path)
        try:
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Switching a new file to WAL takes an exclusive lock that the busy handler does
        # not wait for: processes opening the same fresh file at once retry here.
        for attempt in range(50):
            try:
                await conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if attempt == 49:
                    await conn.close()
                    raise StoreUnavailable(f"cannot open {path}: {exc}") from exc
                await asyncio.sleep(0.1)
        # FULL: an acknowledged write survives a power loss, not just a process crash.
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await asyncio.to_thread(_owner_only_files, path)  # a -wal/-shm WAL mode just made
        return cls(conn)

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._lock:
            await self._queries.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        async with self._lock:
            return await self._queries.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._lock:
            return await self._queries.fetchrow(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        async with self._lock:
            await self._queries.execute("BEGIN IMMEDIATE")
            try:
                await check_acting(self._queries)
                yield self._queries
                await write_pending(self._queries)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._conn.execute("ROLLBACK")
                raise StoreUnavailable(str(exc)) from exc

    async def notify_feed(self, tx: Queries) -> None:
        """Tailers of a SQLite store poll; nothing to wake."""

    async def listen_feed(self, wake: Callable[[], None]) -> None:
        """Tailers of a SQLite store poll; nothing to listen to."""

    async def close(self) -> None:
        await self._conn.close()

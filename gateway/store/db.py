"""The small SQL surface both backends implement; queries use `$1`-style parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = Mapping[str, Any]


class Queries(Protocol):
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database(Queries, Protocol):
    dialect: str

    def transaction(self) -> AbstractAsyncContextManager[Queries]:
        """A serialisable write transaction; feed entries appended in it commit in seq order."""

    async def notify_feed(self, tx: Queries) -> None:
        """Wake other processes' feed tailers once `tx` commits (no-op where they poll)."""

    async def listen_feed(self, wake: Any) -> None:
        """Call `wake()` when another process appends to the feed (no-op where they poll)."""

    async def close(self) -> None: ...


class StoreUnavailable(Exception):
    """The database could not be reached or answered with an I/O error."""

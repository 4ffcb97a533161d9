"""Where console login failures are counted: one place for every worker and instance.

By default the store's database (`login_counters`), so several workers and several
instances on one PostgreSQL count together; in Redis when `limits.redis_url` is set.
Counts are per fixed window (`window_start` = the window's first second), touched only
by console logins, never by proxied requests.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol
from urllib.parse import unquote, urlsplit

from aiocache import RedisCache
from redis.exceptions import RedisError

from gateway.store import Store, StoreUnavailable


class Counters(Protocol):
    async def counts(self, keys: Sequence[str], window_start: float) -> dict[str, int]: ...

    async def add(self, keys: Sequence[str], window_start: float, window: float) -> None:
        """One more failure for each of `keys` in the window starting at `window_start`."""

    async def reset(self, key: str, window_start: float) -> None: ...

    async def close(self) -> None: ...


class StoreCounters:
    """Counters in the store's database; windows that are over are pruned now and then."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pruned_before = 0.0

    async def counts(self, keys: Sequence[str], window_start: float) -> dict[str, int]:
        return await self._store.login_counts(keys, window_start)

    async def add(self, keys: Sequence[str], window_start: float, window: float) -> None:
        await self._store.add_login_failure(keys, window_start)
        if window_start > self._pruned_before:  # at most once a window per process
            self._pruned_before = window_start
            await self._store.prune_login_counters(window_start)

    async def reset(self, key: str, window_start: float) -> None:
        await self._store.reset_login_counter(key)

    async def close(self) -> None:
        """The store is closed by its owner."""


class RedisCounters:
    """Counters in Redis through aiocache: one key per (key, window), expiring with it."""

    def __init__(self, url: str, namespace: str, *, timeout: float = 2.0) -> None:
        parts = urlsplit(url)
        self._cache = RedisCache(
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(parts.path.strip("/") or 0),
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss",
            namespace=namespace,
            timeout=timeout,  # a Redis that hangs answers 503, not a stuck login
            create_connection_timeout=timeout,
        )

    @staticmethod
    def _name(key: str, window_start: float) -> str:
        return f"{key}@{int(window_start)}"

    async def counts(self, keys: Sequence[str], window_start: float) -> dict[str, int]:
        names = [self._name(key, window_start) for key in keys]
        async with _unavailable_on_error():
            values = await self._cache.multi_get(names)
        return {key: int(value) for key, value in zip(keys, values, strict=True) if value}

    async def add(self, keys: Sequence[str], window_start: float, window: float) -> None:
        # The key outlives its window by a little: a late reader still sees the count.
        ttl = int(window) + 60
        async with _unavailable_on_error():
            await asyncio.gather(*(self._add_one(self._name(key, window_start), ttl)
                                   for key in keys))

    async def _add_one(self, name: str, ttl: int) -> None:
        await self._cache.increment(name, 1)
        # Every time, not only on the first: a crash between the two leaves no immortal key.
        await self._cache.expire(name, ttl)

    async def reset(self, key: str, window_start: float) -> None:
        async with _unavailable_on_error():
            await self._cache.delete(self._name(key, window_start))

    async def close(self) -> None:
        # aiocache 0.12 closes its client with redis-py's `close()`, deprecated since 5.0.1.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await self._cache.close()


@asynccontextmanager
async def _unavailable_on_error() -> AsyncIterator[None]:
    """Redis errors become StoreUnavailable: the login answers 503 with Retry-After."""
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"login counters in Redis: {exc!r}") from exc

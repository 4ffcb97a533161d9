"""Tail the change feed and hand every entry, in order, to the process's subscribers.

PostgreSQL wakes the tailer with NOTIFY (and it still polls, in case a notification
was lost with a connection); SQLite is polled every `poll_interval`. `staleness()`
is how long ago the feed was last read successfully: the bound /readyz checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.store.db import StoreUnavailable
from gateway.store.models import Change
from gateway.store.store import Store

log = logging.getLogger("gateway.feed")

Subscriber = Callable[[Change], None]


class FeedTailer:
    def __init__(
        self,
        store: Store,
        *,
        poll_interval: float,
        start_seq: int = 0,
        fallback_poll: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        # A listening backend needs no tight polling; a missed NOTIFY still gets caught.
        self._poll_interval = poll_interval
        self._fallback_poll = fallback_poll
        self._subscribers: list[Subscriber] = []
        self._wake = asyncio.Event()
        self._polling = asyncio.Lock()  # one reader at a time keeps last_seq in order
        self._reads_begun = 0  # catch_up's reads, numbered from 1
        self._last_read = 0  # the number of the last one that ended, and how
        self._last_read_error: Exception | None = None
        self._task: asyncio.Task[None] | None = None
        self._monotonic = monotonic
        self.last_seq = start_seq
        self.last_success = monotonic()
        self.last_error: str | None = None
        self.last_entry_delay = 0.0  # seconds between an entry's append and its application

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def staleness(self) -> float:
        return self._monotonic() - self.last_success

    async def start(self) -> None:
        listens = self._store.dialect == "postgres"
        if listens:
            await self._store.db.listen_feed(self._wake.set)
        interval = self._fallback_poll if listens else self._poll_interval
        self._task = asyncio.create_task(self._run(interval), name="gateway-feed-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None

    async def poll_once(self) -> int:
        """Read and apply everything new; return how many entries were applied."""
        applied = 0
        while True:
            changes = await self._store.changes_since(self.last_seq)
            now = self._store.clock()
            for change in changes:
                for subscriber in self._subscribers:
                    try:
                        subscriber(change)
                    except Exception:
                        # One bad subscriber must not stop the feed for everyone else.
                        log.exception("feed subscriber failed on seq %d", change.seq)
                self.last_seq = change.seq
                self.last_entry_delay = max(0.0, now - change.created_at)
                applied += 1
            if len(changes) < 1000:
                return applied

    async def catch_up(self) -> None:
        """Apply what is new now: a handler calls this after its own write, so the change
        holds in this process before the answer leaves (others follow within the bound).
        Callers queued behind a read share the next one, its failure included: a read that
        began after they asked covers them, so a slow store is asked once, not per caller."""
        asked = self._reads_begun
        async with self._polling:
            if self._last_read > asked:
                if self._last_read_error is not None:
                    # One object raised in many tasks: each raise starts a fresh traceback.
                    raise self._last_read_error.with_traceback(None)
                return
            self._reads_begun += 1
            read = self._reads_begun
            try:
                await self.poll_once()
            except Exception as exc:
                self._last_read, self._last_read_error = read, exc
                raise
            self._last_read, self._last_read_error = read, None

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.catch_up()
                self.last_success = self._monotonic()
                self.last_error = None
            except StoreUnavailable as exc:
                if self.last_error is None:
                    log.warning("change feed unreadable: %s", exc)
                self.last_error = str(exc)
            except Exception as exc:  # the tailer must outlive any one bad read
                log.exception("change feed read failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the wait completes, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()

"""Password checks in a bounded pool: a cap on concurrent hashes, a bounded waiting line.

scrypt costs ~100 ms of CPU and 32 MiB per check, so a login flood must not start one
thread per attempt. At most `concurrency` checks run at once (on threads of their own);
up to `queue_size` more wait. The line is ordered by each waiter's rank, read again
whenever a place is handed out (gateway.auth.ratelimit: the failures on record for the
attempt, and what its address and prefix have in flight at that moment), so a client
with a clean record goes ahead of one that keeps failing; when the line is full, a
newcomer ranked better takes the place of the worst waiter. Whoever is left out gets 429.

A waiter whose client has disconnected by its turn is dropped without hashing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.auth.passwords import verify_password
from gateway.errors import GatewayError


class PoolFull(GatewayError):
    def __init__(self) -> None:
        super().__init__(429, "RateLimit Exceed.", headers={"Retry-After": "1"})


class ClientGone(ConnectionResetError):
    """The client disconnected while its check waited (answered like any reset)."""


Rank = Callable[[], int]
"""Lower goes first; ties go by arrival."""


@dataclass(eq=False)
class _Waiter:
    rank: Rank
    seq: int
    turn: asyncio.Future[None]

    def key(self) -> tuple[int, int]:
        return self.rank(), self.seq


class PasswordPool:
    def __init__(self, concurrency: int, queue_size: int) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._running = 0
        self._waiting: list[_Waiter] = []  # short (queue_size): min/max scans are cheap
        self._seq = itertools.count()
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="gateway-scrypt")
        # What happened to each attempt, for tests and the measurement script.
        self.hashed = 0
        self.dropped = 0
        self.refused = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admits(self, rank: int) -> bool:
        """Whether an attempt ranked `rank` would get a place now; when not, it is refused
        before anything more is spent on it."""
        if self._running < self.concurrency or len(self._waiting) < self.queue_size:
            return True
        return max(w.key() for w in self._waiting)[0] > rank

    async def verify(self, password: str, stored: str, *, rank: Rank,
                     connected: Callable[[], bool]) -> bool:
        """`verify_password` on the pool; raises PoolFull (429) or ClientGone."""
        async with self.slot(rank):
            if not connected():
                self.dropped += 1
                raise ClientGone("client disconnected before its password check")
            self.hashed += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, verify_password, password, stored)

    @asynccontextmanager
    async def slot(self, rank: Rank = lambda: 0) -> AsyncIterator[None]:
        """One of the `concurrency` places, once it is this caller's turn."""
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: Rank) -> None:
        if self._running < self.concurrency and not self._waiting:
            self._running += 1
            return
        waiter = _Waiter(rank, next(self._seq), asyncio.get_running_loop().create_future())
        if len(self._waiting) >= self.queue_size:
            worst = max(self._waiting, key=_Waiter.key, default=None)
            if worst is None or worst.key() <= waiter.key():
                self.refused += 1
                raise PoolFull()
            self._waiting.remove(worst)
            self.refused += 1
            worst.turn.set_exception(PoolFull())
        self._waiting.append(waiter)
        try:
            await waiter.turn  # resolved by _release, which hands its slot over
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.turn.done() and not waiter.turn.cancelled() \
                    and waiter.turn.exception() is None:
                self._release()  # the slot was handed over as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            best = min(self._waiting, key=_Waiter.key)
            self._waiting.remove(best)
            if not best.turn.done():
                best.turn.set_result(None)  # the slot goes to it: _running is unchanged
                return
        self._running -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

"""Password checks in a bounded pool: a cap on concurrent hashes, a bounded waiting line.

scrypt costs ~100 ms of CPU and 32 MiB per check, so a login flood must not start one
thread per attempt. At most `concurrency` checks run at once (on threads of their own);
up to `queue_size` more wait. The line is ordered by each waiter's rank, read again
whenever a place is handed out (gateway.auth.ratelimit: the failures on record for the
attempt, and what its address and prefix have in flight at that moment), so a client
with a clean record goes ahead of one that keeps failing; when the line is full, a
newcomer ranked better takes the place of the worst waiter. Whoever is left out gets 429.

One more place is kept for attempts ranked below zero (a username that logged in from
the same address in this window), so such an admin never waits for a stranger's check;
the general places' threads run at a lower CPU priority (nice 10), so strangers' checks
yield the CPU to the event loop and to that admin's check.

A waiter whose client has disconnected by its turn is dropped without hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
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


KNOWN = -1  # the rank of an attempt the kept place is for
_GENERAL, _KEPT = "general", "kept"


@dataclass(eq=False)
class _Waiter:
    rank: Rank
    seq: int
    turn: asyncio.Future[str]  # the place it is handed: _GENERAL or _KEPT

    def key(self) -> tuple[int, int]:
        return self.rank(), self.seq


class PasswordPool:
    def __init__(self, concurrency: int, queue_size: int) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._running = {_GENERAL: 0, _KEPT: 0}
        self._places = {_GENERAL: concurrency, _KEPT: 1}
        self._waiting: list[_Waiter] = []  # short (queue_size): min/max scans are cheap
        self._seq = itertools.count()
        self._executors = {
            _GENERAL: ThreadPoolExecutor(concurrency, thread_name_prefix="gateway-scrypt",
                                         initializer=_lower_priority),
            _KEPT: ThreadPoolExecutor(1, thread_name_prefix="gateway-scrypt-known"),
        }
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
        if self._free(rank) is not None or len(self._waiting) < self.queue_size:
            return True
        return max(w.key() for w in self._waiting)[0] > rank

    async def verify(self, password: str, stored: str, *, rank: Rank,
                     connected: Callable[[], bool]) -> bool:
        """`verify_password` on the pool; raises PoolFull (429) or ClientGone."""
        async with self.slot(rank) as place:
            if not connected():
                self.dropped += 1
                raise ClientGone("client disconnected before its password check")
            self.hashed += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executors[place], verify_password,
                                              password, stored)

    @asynccontextmanager
    async def slot(self, rank: Rank = lambda: 0) -> AsyncIterator[str]:
        """A place to check a password in, once it is this caller's turn."""
        place = await self._acquire(rank)
        try:
            yield place
        finally:
            self._release(place)

    def _free(self, rank: int) -> str | None:
        """A place free now for an attempt of `rank`, if any."""
        if self._running[_GENERAL] < self._places[_GENERAL]:
            return _GENERAL
        if rank <= KNOWN and self._running[_KEPT] < self._places[_KEPT]:
            return _KEPT
        return None

    async def _acquire(self, rank: Rank) -> str:
        place = self._free(rank())
        if place is not None and (not self._waiting or place == _KEPT):
            self._running[place] += 1
            return place
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
            return await waiter.turn  # resolved by _release, which hands its place over
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.turn.done() and not waiter.turn.cancelled() \
                    and waiter.turn.exception() is None:
                self._release(waiter.turn.result())  # handed over as we were cancelled
            raise

    def _release(self, place: str) -> None:
        """Hand `place` to the best waiter it may go to (the kept one: a known admin)."""
        while candidates := [w for w in self._waiting
                             if place == _GENERAL or w.rank() <= KNOWN]:
            best = min(candidates, key=_Waiter.key)
            self._waiting.remove(best)
            if not best.turn.done():  # done: cancelled, its task not yet resumed
                best.turn.set_result(place)  # _running unchanged: the place changes hands
                return
        self._running[place] -= 1

    def close(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """In a general place's thread: nice 10 for this thread only (Linux: a thread id is a
    process id to setpriority); elsewhere, or if refused, it keeps the process's."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)

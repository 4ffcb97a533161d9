"""Slowing brute force on console login, before any password is hashed.

Failures are counted per username (in its network), per client address and per address
prefix (/24 for IPv4, /64 for IPv6), in fixed windows of `limits.window`, in a place
every worker and instance shares (gateway.auth.login_counters). An attempt is refused
with 429 while any of its three keys has reached its limit; a successful login clears
its username's count. Attempts already in flight in this process count too, so a burst
sent at once cannot all pass the check before the first failure is recorded.

An admitted attempt waits for the password pool (gateway.auth.password_pool) with a
priority from the same read: its failures on record, what its address and prefix have
in flight, or first of all if this username logged in from this address in this window.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.auth.login_counters import Counters
from gateway.auth.password_pool import KNOWN, PasswordPool, PoolFull, Rank
from gateway.config import LimitsConfig
from gateway.errors import GatewayError

MAX_BLOCKED = 100_000


@dataclass(frozen=True)
class LoginAttempt:
    username: str  # keys of the three counters
    address: str
    prefix: str

    @classmethod
    def of(cls, network_id: str, username: str, address: str | None) -> LoginAttempt:
        return cls(f"u:{network_id}:{username}", f"a:{address or 'unknown'}",
                   f"p:{address_prefix(address)}")

    @property
    def keys(self) -> tuple[str, str, str]:
        return self.username, self.address, self.prefix

    @property
    def known(self) -> str:
        """Counted when this username logs in from this address: first in line after."""
        return f"k:{self.username}|{self.address}"


def address_prefix(address: str | None) -> str:
    """The /24 (IPv4) or /64 (IPv6) holding `address`; the address itself if not an IP."""
    try:
        ip = ipaddress.ip_address((address or "").strip("[]"))
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def rate_limited(retry_after: float) -> GatewayError:
    return GatewayError(429, "RateLimit Exceed.",
                        headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class LoginGate:
    """One admitted attempt: its password check on the pool, then its outcome."""

    def __init__(self, limiter: LoginLimiter, attempt: LoginAttempt, limits: LimitsConfig,
                 rank: Rank) -> None:
        self._limiter, self._attempt, self._limits = limiter, attempt, limits
        self.rank = rank

    async def verify(self, password: str, stored: str, connected: Callable[[], bool]) -> bool:
        return await self._limiter.pool.verify(password, stored, rank=self.rank,
                                               connected=connected)

    async def fail(self) -> None:
        await self._limiter.counters.add(self._attempt.keys, *self._limiter.window(self._limits))

    async def succeed(self) -> None:
        start, window = self._limiter.window(self._limits)
        self._limiter.forget(self._attempt.username)
        await self._limiter.counters.reset(self._attempt.username, start)
        await self._limiter.counters.add((self._attempt.known,), start, window)


class LoginLimiter:
    def __init__(self, limits: LimitsConfig, clock: Callable[[], float] = time.time) -> None:
        self.pool = PasswordPool(limits.hash_concurrency, limits.hash_queue)
        self._counters: Counters | None = None
        self._clock = clock
        self._in_flight: Counter[str] = Counter()
        # Keys known to be over their limit until the window ends: refused without a read.
        self._blocked: dict[str, float] = {}

    @property
    def counters(self) -> Counters:
        assert self._counters is not None, "LoginLimiter.bind() not called"
        return self._counters

    def bind(self, counters: Counters) -> None:
        """Set at start-up, once the store (or Redis) is open."""
        self._counters = counters

    def window(self, limits: LimitsConfig) -> tuple[float, float]:
        """(start of the current window, its length)."""
        now = self._clock()
        return math.floor(now / limits.window) * limits.window, limits.window

    @asynccontextmanager
    async def attempt(self, attempt: LoginAttempt,
                      limits: LimitsConfig) -> AsyncIterator[LoginGate]:
        """Admit `attempt` or raise 429; it counts as in flight until the block ends."""
        now = self._clock()
        start, window = self.window(limits)
        for key in attempt.keys:
            until = self._blocked.get(key, 0.0)
            if until > now:
                raise rate_limited(until - now)
        stored = await self.counters.counts((*attempt.keys, attempt.known), start)
        known = stored.pop(attempt.known, 0) > 0
        caps = (limits.failures_per_username, limits.failures_per_address,
                limits.failures_per_prefix)
        for key, cap in zip(attempt.keys, caps, strict=True):
            if stored.get(key, 0) >= cap:
                self._block(key, start + window)
                raise rate_limited(start + window - now)
            if stored.get(key, 0) + self._in_flight[key] >= cap:
                raise rate_limited(1)  # decided by the attempts still being checked
        # A clean record goes first in the pool's line. Before any failure is on record
        # (a flood's first seconds), the other attempts in flight from the same address or
        # prefix tell a flood from one person: read again whenever a place is handed out,
        # so a flood's first attempt is ranked by the siblings that came after it. A
        # username that logged in from this address in this window goes ahead of every
        # stranger (it orders the line, it never lifts a limit).
        failures = sum(stored.values())
        if not self.pool.admits(KNOWN if known else failures + self._siblings(attempt, 0)):
            self.pool.refused += 1  # refused now, before the admin's row is read
            raise PoolFull()
        self._in_flight.update(attempt.keys)
        rank: Rank = (lambda: KNOWN) if known else \
            (lambda: failures + self._siblings(attempt, 1))
        try:
            yield LoginGate(self, attempt, limits, rank)
        finally:
            self._in_flight.subtract(attempt.keys)
            for key in attempt.keys:
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    def _siblings(self, attempt: LoginAttempt, itself: int) -> int:
        """Other attempts in flight from the attempt's address and prefix."""
        return (self._in_flight[attempt.address] + self._in_flight[attempt.prefix]
                - 2 * itself)

    def _block(self, key: str, until: float) -> None:
        if len(self._blocked) >= MAX_BLOCKED:  # bounded: forget blocks that are over
            now = self._clock()
            self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            if len(self._blocked) >= MAX_BLOCKED:
                self._blocked.clear()
        self._blocked[key] = until

    def forget(self, key: str) -> None:
        self._blocked.pop(key, None)

    async def close(self) -> None:
        self.pool.close()
        if self._counters is not None:
            await self._counters.close()

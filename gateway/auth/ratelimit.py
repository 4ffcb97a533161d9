"""Slowing brute force on console login: failures per username and per address.

Counts live in the process (a fixed window per key): with several workers each one
counts on its own, so the effective limit is up to `workers` times the configured one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.errors import GatewayError

WINDOW = 300.0
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_KEYS = 100_000


class LoginLimiter:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}  # key -> (window start, count)

    def check(self, username_key: str, address_key: str) -> None:
        """Raise 429 "RateLimit Exceed." while either key is over its limit."""
        for key, limit in ((username_key, MAX_FAILURES_PER_USERNAME),
                           (address_key, MAX_FAILURES_PER_ADDRESS)):
            started, count = self._failures.get(key, (0.0, 0))
            remaining = started + WINDOW - self._clock()
            if count >= limit and remaining > 0:
                raise GatewayError(429, "RateLimit Exceed.",
                                   headers={"Retry-After": str(math.ceil(remaining))})

    def fail(self, *keys: str) -> None:
        now = self._clock()
        if len(self._failures) > MAX_KEYS:  # bounded: forget windows that are over
            self._failures = {k: v for k, v in self._failures.items() if v[0] + WINDOW > now}
        for key in keys:
            started, count = self._failures.get(key, (now, 0))
            if started + WINDOW <= now:
                started, count = now, 0
            self._failures[key] = (started, count + 1)

    def succeed(self, username_key: str) -> None:
        self._failures.pop(username_key, None)

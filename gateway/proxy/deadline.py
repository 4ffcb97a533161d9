"""A time-out that is pushed back often and fires rarely.

A connection on the hot path moves its time-out on every read or request. Cancelling
and scheduling a timer each time costs an allocation and two heap operations; this
keeps one timer and only moves a number. When the timer fires early (the deadline moved
on meanwhile) it schedules itself again for the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    __slots__ = ("_at", "_callback", "_loop", "_timer", "_timer_at", "kind")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._at = 0.0  # loop time; 0: disarmed
        self._callback: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.kind = ""  # what the armed deadline is for (callers tell them apart)

    def arm(self, seconds: float, callback: Callable[[], None], kind: str = "") -> None:
        """Call `callback` once `seconds` pass without another arm or a disarm;
        `seconds <= 0` disarms."""
        if seconds <= 0:
            self.disarm()
            return
        self._at = self._loop.time() + seconds
        self._callback = callback
        self.kind = kind
        if self._timer is None or self._timer_at > self._at:
            self._schedule(self._at)

    def push(self, seconds: float) -> None:
        """Move an armed deadline to `seconds` from now (activity seen); cheap."""
        if self._at:
            self._at = self._loop.time() + seconds

    def disarm(self) -> None:
        self._at = 0.0
        self._callback = None
        self.kind = ""

    def cancel(self) -> None:
        """Disarm and drop the timer (the connection is gone)."""
        self.disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def armed(self) -> bool:
        return self._at > 0

    def _schedule(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._at:
            return
        if self._loop.time() < self._at:
            self._schedule(self._at)
            return
        callback, self._callback = self._callback, None
        self._at = 0.0
        self.kind = ""
        if callback is not None:
            callback()

"""Writes held to the end of an event-loop iteration while the data plane is busy.

A write to a socket whose reader sleeps on another core wakes that reader, and the
writer pays for the wake-up: an interprocessor interrupt, on a virtual machine several
microseconds, more than the rest of the write. Under load one loop iteration serves
many connections; sent one by one as each request is handled, nearly every write wakes
a reader that went back to sleep since the last one. Held to the end of the iteration
and sent back to back, they find the readers already awake. Measured on loopback with
64 connections this took a proxied request from about 40 to about 30 µs of CPU (README,
"Benchmarks").

Holding adds at most one iteration of latency, which only pays off when many requests
share an iteration: writes are held only while at least `BUSY` exchanges are in flight,
and go out at once otherwise (a sidecar with a few connections sees no change).

Each transport has one `Outbox`; every write to it goes through the outbox, so held and
immediate writes keep their order. Whoever closes or hands on a transport sends what its
outbox holds first (`flush`); an abort drops it, as it drops the transport's own buffer.
"""

from __future__ import annotations

import asyncio
import logging
import sys

BUSY = 8  # exchanges in flight from which writes are held (server.hold_writes_from)
# Held bytes from which an outbox sends at once, so that the transport's own buffer
# limits (pause_writing) still see everything: a client pipelining requests the data
# plane answers itself, and reading none of the answers, is paused as without holding.
MAX_HELD = 64 * 1024

log = logging.getLogger("gateway.dataplane")


class WriteBatch:
    """The outboxes holding writes in this iteration, and the data plane's load."""

    __slots__ = ("_held", "_scheduled", "busy", "held_writes", "in_flight")

    def __init__(self, busy: int = BUSY) -> None:
        self._held: list[Outbox] = []
        self._scheduled = False
        # In flight from which writes are held (tests hold from 1); 0: never.
        self.busy = busy if busy > 0 else sys.maxsize
        self.in_flight = 0  # exchanges between their request and their answer
        self.held_writes = 0  # held so far, one per outbox and iteration (for tests)

    def takes(self, outbox: Outbox) -> bool:
        """Whether `outbox`'s next write is held (then it is flushed with the batch)."""
        if self.in_flight < self.busy:
            return False
        self.held_writes += 1
        self._held.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            # Callbacks scheduled now run once this iteration's I/O callbacks are done.
            asyncio.get_running_loop().call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Send every held write (the iteration is over)."""
        self._scheduled = False
        held, self._held = self._held, []
        for outbox in held:
            try:
                outbox.flush()
            except Exception:  # one transport's failure must not strand the others
                log.exception("held write failed")
                outbox.transport.abort()


class Outbox:
    """One transport's writes, sent at once or held for the batch, in order."""

    __slots__ = ("_batch", "_held", "_held_bytes", "transport")

    def __init__(self, batch: WriteBatch, transport: asyncio.Transport) -> None:
        self._batch = batch
        self.transport = transport
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes) -> None:
        if self._held or self._batch.takes(self):  # after what is held already
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes >= MAX_HELD:
                self.flush()
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Send what is held now (before a close, a hand-off or a wait for the reader)."""
        if not self._held:
            return
        held, self._held = self._held, []
        self._held_bytes = 0
        if self.transport.is_closing():
            return  # closed by the peer meanwhile: nobody to send it to
        if len(held) == 1:
            self.transport.write(held[0])
        else:
            self.transport.writelines(held)  # one vectored write, no copy of the bodies

    def drop(self) -> None:
        """Forget what is held (the transport is aborted)."""
        self._held = []
        self._held_bytes = 0

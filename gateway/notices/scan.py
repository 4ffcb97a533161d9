"""Time-based notices: a grace ending within the hour, a token expiring within
`notices.expiry_warning`. No write makes them, so every process looks for them every
`notices.scan_interval`; each is keyed by subscription, kind and token, so however many
processes find one, it is queued once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.config import NoticesConfig
from gateway.notices import kinds
from gateway.store import Store, StoreUnavailable

log = logging.getLogger("gateway.notices")

PRUNE_EVERY = 3600.0
# Delivered rows are kept past the longest window a scanned notice can be found in,
# so their keys still stop it from being queued again.
RETENTION_MARGIN = 86400.0


async def scan_once(store: Store, settings: NoticesConfig) -> int:
    """Queue what is due now; return the rows added."""
    now = store.clock()
    grace, expiring = await store.admin_tokens_ending(
        now, kinds.GRACE_NOTICE, settings.expiry_warning
    )
    notices = [
        kinds.grace_ending(row["network_id"], row["subject"], row["jti"],
                           float(row["grace_until"]))
        for row in grace
    ] + [
        kinds.expiring(row["network_id"], row["subject"], row["jti"], float(row["expires_at"]))
        for row in expiring
    ]
    return await store.queue_scanned(notices)


def retention(settings: NoticesConfig) -> float:
    return max(settings.expiry_warning, kinds.GRACE_NOTICE) + RETENTION_MARGIN


async def scan_forever(
    store: Store, settings: Callable[[], NoticesConfig], wake: Callable[[], None],
    stopped: asyncio.Event,
) -> None:
    """Until `stopped` is set (as well as cancelled: see `Deliveries.stop`)."""
    pruned = 0.0
    while not stopped.is_set():
        current = settings()
        try:
            if await scan_once(store, current):
                wake()
            if time.monotonic() - pruned >= PRUNE_EVERY:
                await store.prune_outbox(store.clock() - retention(current))
                pruned = time.monotonic()
        except StoreUnavailable as exc:
            log.warning("notice scan skipped: %s", exc)
        except Exception:  # the scan must outlive any one bad pass
            log.exception("notice scan failed")
        try:
            async with asyncio.timeout(current.scan_interval):
                await stopped.wait()
        except TimeoutError:
            pass

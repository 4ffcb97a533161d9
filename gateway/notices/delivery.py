"""The delivery worker: one per gateway process, all sharing the store's outbox.

Due rows are claimed with a lease (gateway/store/webhooks.py) so that processes and
instances never send one row at the same time; each is sent once per attempt with a
timeout, and marked delivered on a 2xx answer. Anything else is retried with
exponential backoff (doubling from `retry_initial` up to `retry_max`, spread by a
random factor so that rows failing together do not come back together) until
`max_attempts`, then given up. A process killed after the commit and before the mark
leaves the row to whichever process claims it next, once the lease has ended: a
notice can arrive twice (with the same delivery id), never not at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from gateway.auth.sealing import Sealer, SealError
from gateway.config import NoticesConfig
from gateway.notices.signing import sealing_purpose, signed_headers
from gateway.notices.targets import literal_refused
from gateway.store import Store, StoreUnavailable
from gateway.store.webhooks import Delivery

log = logging.getLogger("gateway.notices")

MAX_IN_FLIGHT = 16  # attempts at once in one process
MAX_ERROR = 300  # characters of an error kept with the row
USER_AGENT = "gateway-webhooks/1"


def lease(settings: NoticesConfig) -> float:
    """How long a claim lasts: past one attempt's timeout and the write that marks it."""
    return 2 * settings.delivery_timeout + 2.0


def backoff(attempts: int, settings: NoticesConfig, spread: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones; `spread` in [0, 1)."""
    nominal = min(settings.retry_max, settings.retry_initial * 2.0 ** min(attempts - 1, 40))
    return nominal * (0.5 + spread / 2)


class Deliveries:
    def __init__(
        self, store: Store, sealer: Sealer, session: aiohttp.ClientSession,
        settings: Callable[[], NoticesConfig], *, spread: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._session = session
        self._settings = settings
        self._spread = spread
        self._wake = asyncio.Event()
        self._claimed: dict[str, Delivery] = {}  # claimed here, attempt not finished
        self._store_error: str | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due rows now (a handler just queued some)."""
        self._wake.set()

    def stop(self) -> None:
        """End `run()` at its next turn. Cancelling it alone is not enough on Python 3.11,
        where a wait that completes as the cancellation arrives can swallow it."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                self._wake.clear()
                settings = self._settings()
                room = MAX_IN_FLIGHT - len(in_flight)
                claimed = await self._claim(room, settings) if room > 0 else []
                for delivery in claimed:
                    task = asyncio.create_task(
                        self._attempt(delivery, settings), name=f"gateway-notice-{delivery.id}"
                    )
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    task.add_done_callback(lambda _task: self._wake.set())  # room again
                try:
                    async with asyncio.timeout(settings.poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)
            await self._release()

    async def _claim(self, room: int, settings: NoticesConfig) -> list[Delivery]:
        try:
            deliveries = await self._store.claim_deliveries(room, lease(settings))
        except StoreUnavailable as exc:
            if self._store_error is None:
                log.warning("notice outbox unreadable: %s", exc)
            self._store_error = str(exc)
            return []
        except Exception:  # the worker must outlive any one bad read
            log.exception("notice outbox read failed")
            return []
        self._store_error = None
        self._claimed.update((delivery.id, delivery) for delivery in deliveries)
        return deliveries

    async def _attempt(self, delivery: Delivery, settings: NoticesConfig) -> None:
        host = urlsplit(delivery.url).hostname  # never the whole URL: it may hold a secret
        try:
            error = await self._send(delivery, settings)
        except Exception as exc:  # a bug costs one attempt, not the row until its lease ends
            log.exception("notice %s: attempt failed", delivery.id)
            error = f"internal error: {type(exc).__name__}"
        try:
            if error is None:
                await self._store.delivery_succeeded(delivery.id)
                log.info("notice %s (%s) delivered to %s", delivery.id, delivery.kind, host)
            else:
                retry_at = None
                if delivery.attempts < settings.max_attempts:
                    delay = backoff(delivery.attempts, settings, self._spread())
                    retry_at = self._store.clock() + delay
                await self._store.delivery_failed(delivery.id, error[:MAX_ERROR], retry_at)
                log.warning("notice %s (%s) to %s failed, attempt %d%s: %s", delivery.id,
                            delivery.kind, host, delivery.attempts,
                            "" if retry_at else ", given up", error)
        except StoreUnavailable as exc:  # the lease ends and the row is claimed again
            log.warning("notice %s: outcome not stored (%s); it will be sent again",
                        delivery.id, exc)
        self._claimed.pop(delivery.id, None)

    async def _send(self, delivery: Delivery, settings: NoticesConfig) -> str | None:
        """One attempt: None when the receiver answered 2xx, else what went wrong."""
        refused = literal_refused(delivery.url, allow_private=settings.allow_private_targets)
        if refused is not None:
            return refused
        try:
            secret = self._sealer.unseal(
                delivery.sealed_secret, sealing_purpose(delivery.subscription_id)
            ).decode()
        except SealError:
            return "the signing secret cannot be opened (was the key-encryption key replaced?)"
        body = delivery.body.encode()
        headers = signed_headers(secret, int(self._store.clock()), body, delivery.id,
                                 delivery.kind)
        headers["User-Agent"] = USER_AGENT
        try:
            async with self._session.post(
                delivery.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=settings.delivery_timeout),
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except TimeoutError:
            return f"no answer within {settings.delivery_timeout:g}s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        except (OSError, ValueError) as exc:  # an unusable URL, a refused address
            return f"{type(exc).__name__}: {exc}"

    async def _release(self) -> None:
        """Shutting down: claims whose attempt was cut short are due again at once rather
        than when their lease ends."""
        if not self._claimed:
            return
        try:
            await asyncio.wait_for(self._store.release_deliveries(list(self._claimed.values())), 5)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("notice claims not released (%s): sent again when their lease ends",
                        exc)
        self._claimed.clear()

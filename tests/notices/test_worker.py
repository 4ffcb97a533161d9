"""The delivery worker stops when told, even while it is being woken at the same moment
(on Python 3.11 a wait that completes as a cancellation arrives can swallow it; a
gateway once hung on SIGTERM that way with deliveries finishing during the drain)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from gateway.auth.sealing import Sealer
from gateway.config import NoticesConfig
from gateway.notices.delivery import Deliveries


class _IdleOutbox:
    """Nothing is ever due; every read takes a moment, as a database's does."""

    clock = staticmethod(lambda: 0.0)

    async def claim_deliveries(self, limit: int, lease: float) -> list[Any]:
        await asyncio.sleep(0)
        return []


async def test_stops_while_being_woken() -> None:
    settings = NoticesConfig(poll_interval=0.001)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        for turns in range(40):
            worker = Deliveries(_IdleOutbox(), Sealer(bytes(32)), session,  # type: ignore[arg-type]
                                lambda: settings)
            task = asyncio.create_task(worker.run())
            for _ in range(turns % 5):
                await asyncio.sleep(0)
            worker.wake()
            for _ in range(turns % 3):
                await asyncio.sleep(0)
            worker.stop()
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=2)
            assert done, f"the worker did not stop (after {turns} turns)"

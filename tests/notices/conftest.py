"""An in-process gateway on SQLite and on PostgreSQL, with fast notice timings, and a
receiver on loopback that verifies every delivery it gets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import load_config
from gateway.keys import STORE
from gateway.notices import kinds
from gateway.store import Network
from gateway.testing.support import Clock, free_port, write_config
from tests.auth.conftest import Gateway
from tests.notices.receiver import Receiver, start_receiver
from tests.proxy.conftest import in_process_gateway

# Fast enough for tests; the retry delays are reached by moving the clock.
NOTICES = {
    "poll_interval": "50ms",
    "scan_interval": "50ms",
    "delivery_timeout": "2s",
    "retry_initial": "10s",
    "retry_max": "40s",
    "max_attempts": 4,
    "expiry_warning": "2h",  # the helpers' admin tokens live a day: not expiring at first
    "allow_private_targets": True,  # the receiver is on loopback
}


def gateway_config(folder: Path, store_config: Path, name: str = "gateway.yaml",
                   **notices: Any) -> Path:
    """A config on the store of `store_config` (SQLite file or PostgreSQL schema)."""
    store = load_config(store_config, environ={}).store
    return write_config(folder, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
        "store": {"url": store.url, "schema": store.schema},
        "notices": {**NOTICES, **notices},
    }, name=name)


@dataclass
class Hooks:
    """The gateway under test, its receiver, and a network with an admin to act as."""

    gw: Gateway
    receiver: Receiver
    clock: Clock
    network: Network
    admin: str  # an admin token of "boss" (role admin)

    async def subscribe(self, path: str = "/hook", events: tuple[str, ...] = kinds.KINDS,
                        token: str | None = None) -> dict[str, Any]:
        status, body, _ = await self.gw.call(
            "POST", "/api/v3/webhooks", token or self.admin,
            json={"url": self.receiver.url_for(path), "events": list(events)})
        assert status == 201, body
        self.receiver.secrets[path] = body["secret"]
        return dict(body)

    async def settled(self, timeout: float = 5.0) -> None:
        """No attempt in progress: each failure's retry time is written. The receiver
        records an answer before the gateway reads it, so moving the clock earlier
        would let the retry be scheduled from the moved clock."""
        store = self.gw.app[STORE]
        deadline = time.monotonic() + timeout
        while await store.db.fetchrow(
                "SELECT id FROM notice_outbox WHERE claimed_until IS NOT NULL"):
            assert time.monotonic() < deadline, "a delivery attempt did not finish"
            await asyncio.sleep(0.02)


@pytest.fixture
async def receiver(clock: Clock) -> AsyncIterator[Receiver]:
    found = Receiver(now=clock)
    runner = await start_receiver(found)
    yield found
    found.release()
    await runner.cleanup()
    assert found.bad == [], found.bad  # every delivery carried a valid signature
    assert found.overlaps == [], found.overlaps  # none was sent twice at once


@pytest.fixture
async def hooks(tmp_path: Path, store_config: Path, clock: Clock,
                receiver: Receiver) -> AsyncIterator[Hooks]:
    config = gateway_config(tmp_path, store_config)
    async with in_process_gateway(config, clock=clock) as (url, app), \
            aiohttp.ClientSession() as session:
        gw = Gateway(url, app, session, "")
        network = await gw.network(secure=False)
        admin = await gw.admin_token(network, "boss", "admin")
        yield Hooks(gw, receiver, clock, network, admin)

"""The console login limits hold across the workers of one `gateway serve --workers 2`:
failures answered by either worker are counted together (in the store, or in Redis)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from gateway.config import load_config
from gateway.store import Network, open_store
from gateway.testing.process import GatewayProcess
from gateway.testing.support import write_config
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import REDIS_URL, login_limits_config, network_with_admin
from tests.workers import metrics_dir, settled, wait_listening

FAILURES = 20  # enough that both workers answer some (each connection goes to either)
REFUSED = 20
# A day-long window: no boundary falls inside a run. Only the username limit is reached.
LIMITS = {"window": "1d", "failures_per_username": FAILURES, "failures_per_address": 1000,
          "failures_per_prefix": 1000}


@asynccontextmanager
async def _two_workers(store_config: Path,
                       limits: dict[str, Any]) -> AsyncIterator[tuple[str, Network, Path]]:
    tmp = store_config.parent
    async with running_upstream("sg") as upstream:
        config = login_limits_config(store_config, upstream, limits, "workers.yaml")
        network = await network_with_admin(config, "workers")
        async with GatewayProcess(config, "--workers", "2", env={"TMPDIR": str(tmp)}) as gw:
            await wait_listening(gw.port, 2)
            yield gw.url, network, metrics_dir(tmp)


async def _login(session: aiohttp.ClientSession, url: str, network: Network, password: str,
                 client: str) -> int:
    async with session.post(f"{url}/console/v1/login",
                            json={"username": "ann", "password": password},
                            headers={"x-api-key": network.api_key,
                                     "X-Forwarded-For": client}) as response:
        await response.read()
        return response.status


async def _failures_on_both_count_together(url: str, network: Network, shared: Path) -> None:
    connector = aiohttp.TCPConnector(force_close=True)  # new connections spread over workers
    async with aiohttp.ClientSession(connector=connector,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        for i in range(FAILURES):  # each from an address of its own
            assert await _login(session, url, network, "wrong", f"192.0.2.{i}") == 401
        for i in range(REFUSED):  # the right password, from anywhere, on either worker
            assert await _login(session, url, network, "pw", f"198.51.100.{i}") == 429
    # Who answered what, from each worker's own metrics files.
    failed = await settled(shared, "console-login", FAILURES, status=401)
    refused = await settled(shared, "console-login", REFUSED, status=429)
    assert len(failed) == 2 and sum(failed.values()) == FAILURES, failed
    assert len(refused) == 2 and sum(refused.values()) == REFUSED, refused


def _window_start(window: float = 86400.0) -> float:
    return math.floor(time.time() / window) * window


@pytest.mark.timeout(90)
async def test_two_workers_count_login_failures_together_in_the_store(
    store_config: Path,
) -> None:
    async with _two_workers(store_config, LIMITS) as (url, network, shared):
        await _failures_on_both_count_together(url, network, shared)
    opened = await open_store(load_config(store_config, environ={}))
    try:
        key = f"u:{network.id}:ann"
        assert await opened.login_counts([key], _window_start()) == {key: FAILURES}
    finally:
        await opened.close()


@pytest.mark.timeout(90)
async def test_two_workers_count_login_failures_together_in_redis(
    tmp_path: Path, redis_namespace: str,
) -> None:
    limits = {**LIMITS, "redis_url": REDIS_URL, "redis_namespace": redis_namespace}
    async with _two_workers(write_config(tmp_path), limits) as (url, network, shared):
        await _failures_on_both_count_together(url, network, shared)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = f"{redis_namespace}:u:{network.id}:ann@{int(_window_start())}"
        assert await client.get(key) == str(FAILURES).encode()
    finally:
        await client.aclose()

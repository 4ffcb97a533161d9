"""Two gateway processes on one store count console login failures together: in the
store's database (SQLite file, PostgreSQL), or in Redis when `limits.redis_url` is set."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis

from gateway.config import load_config
from gateway.store import Network, open_store
from gateway.testing.process import GatewayProcess
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import REDIS_URL, login_limits_config, network_with_admin

# A day-long window: no window boundary falls inside a run and resets the counts.
LIMITS = {"window": "1d", "failures_per_username": 3, "failures_per_address": 4,
          "failures_per_prefix": 100}


@asynccontextmanager
async def _pair(store_config: Path,
                limits: dict[str, Any]) -> AsyncIterator[tuple[str, str, Network]]:
    async with running_upstream("sg") as upstream:
        paths = [login_limits_config(store_config, upstream, limits, name)
                 for name in ("a.yaml", "b.yaml")]
        network = await network_with_admin(paths[0], "cluster")
        async with GatewayProcess(paths[0]) as a, GatewayProcess(paths[1]) as b:
            yield a.url, b.url, network


async def _login(session: aiohttp.ClientSession, url: str, network: Network, username: str,
                 password: str, client: str) -> int:
    async with session.post(f"{url}/console/v1/login", json={"username": username,
                                                             "password": password},
                            headers={"x-api-key": network.api_key,
                                     "X-Forwarded-For": client}) as response:
        body = await response.json()
        if response.status == 429:
            assert body["code"] == 400311 and int(response.headers["Retry-After"]) >= 1
        return response.status


async def _attempts_through_one_count_on_the_other(a: str, b: str, network: Network) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        # Username: failures through a, from three addresses; b refuses the right password.
        for i in range(3):
            assert await _login(session, a, network, "ann", "x", f"192.0.2.{i}") == 401
        assert await _login(session, b, network, "ann", "pw", "198.18.0.1") == 429
        # Address: two failures through each process make four; the fifth is refused by
        # either, for any username.
        for i, url in enumerate((a, b, a, b)):
            assert await _login(session, url, network, f"ghost{i}", "x", "203.0.113.50") == 401
        assert await _login(session, a, network, "other", "x", "203.0.113.50") == 429
        assert await _login(session, b, network, "other", "x", "203.0.113.50") == 429
        assert await _login(session, b, network, "other", "x", "203.0.113.51") == 401


async def test_two_processes_share_the_limits_in_the_store(store_config: Path) -> None:
    async with _pair(store_config, LIMITS) as (a, b, network):
        await _attempts_through_one_count_on_the_other(a, b, network)
    opened = await open_store(load_config(store_config, environ={}))
    try:
        assert await opened.login_counts(["a:203.0.113.50"], _window_start()) \
            == {"a:203.0.113.50": 4}
    finally:
        await opened.close()


async def test_two_processes_share_the_limits_in_redis(store_config: Path,
                                                       redis_namespace: str) -> None:
    limits = {**LIMITS, "redis_url": REDIS_URL, "redis_namespace": redis_namespace}
    async with _pair(store_config, limits) as (a, b, network):
        await _attempts_through_one_count_on_the_other(a, b, network)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        address_key = f"{redis_namespace}:a:203.0.113.50@{int(_window_start())}"
        assert await client.get(address_key) == b"4"
        assert 0 < await client.ttl(address_key) <= 86400 + 60
    finally:
        await client.aclose()
    # Nothing was counted in the store.
    opened = await open_store(load_config(store_config, environ={}))
    try:
        assert await opened.login_counts(["a:203.0.113.50"], _window_start()) == {}
    finally:
        await opened.close()


def _window_start(window: float = 86400.0) -> float:
    return math.floor(time.time() / window) * window

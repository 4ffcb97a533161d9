"""Two gateway processes on one store: what one revokes, the other refuses within a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.auth.loader import load_token_service
from gateway.config import load_config
from gateway.store import Network, open_store
from gateway.testing.process import GatewayProcess
from gateway.testing.support import REPO, free_port, write_config
from gateway.testing.upstream import running_upstream

ROUNDS = 10
BOUND = 0.5  # README ("Change feed") gives the measured figures; this only catches regressions


def _configs(store_config: Path, upstream: str) -> list[Path]:
    store = load_config(store_config, environ={}).store
    paths = []
    for name in ("a.yaml", "b.yaml"):
        paths.append(write_config(store_config.parent, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
            "store": {"url": store.url, "schema": store.schema},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
        }, name=name))
    return paths


async def _login(session: aiohttp.ClientSession, url: str, network: Network, user: str,
                 device: str) -> str:
    async with session.post(f"{url}/api/v3/sessions", headers={"x-api-key": network.api_key},
                            json={"userId": user, "deviceId": device}) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return str(body["accessToken"])


async def _status(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(f"{url}/api/v3/x",
                           headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


async def _refused_after(session: aiohttp.ClientSession, url: str, token: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 5:
        if await _status(session, url, token) == 401:
            return time.monotonic() - started
        await asyncio.sleep(0.002)
    raise AssertionError("the other gateway never refused the token")


async def _admin_token(config: Path, network: Network) -> str:
    store = await open_store(load_config(config, environ={}))
    try:
        await store.create_admin(network.id, "ops", "admin", "unused")
        tokens = await load_token_service(load_config(config, environ={}), store, time.time)
        token, credential = await tokens.issue_admin(network.id, "ops", "admin", 3600)
        await store.record_credential(credential)
    finally:
        await store.close()
    return token


@pytest.fixture
async def pair(store_config: Path) -> AsyncIterator[tuple[str, str, Network, Path]]:
    async with running_upstream("sg") as upstream:
        first, second = _configs(store_config, upstream)
        store = await open_store(load_config(first, environ={}))
        try:
            network = await store.create_network("cluster", "sg", secure=False)
        finally:
            await store.close()
        async with GatewayProcess(first) as a, GatewayProcess(second) as b:
            yield a.url, b.url, network, first


async def test_revocation_and_rebinding_reach_the_other_process(
    pair: tuple[str, str, Network, Path], backend: str
) -> None:
    a, b, network, _config = pair
    revocations, rebindings = [], []
    async with aiohttp.ClientSession() as session:
        for round_ in range(ROUNDS):
            token = await _login(session, a, network, f"u{round_}", f"d{round_}")
            assert await _status(session, b, token) == 200  # b has verified and cached it
            async with session.delete(f"{a}/api/v4/sessions",
                                      headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200
            revocations.append(await _refused_after(session, b, token))

            owner = await _login(session, a, network, f"owner{round_}", f"shared{round_}")
            assert await _status(session, b, owner) == 200
            await _login(session, a, network, f"intruder{round_}", f"shared{round_}")
            rebindings.append(await _refused_after(session, b, owner))
    worst = max(revocations + rebindings)
    print(f"\n{backend}: revocation seen by the other process after "
          f"median {sorted(revocations)[ROUNDS // 2] * 1000:.0f} ms, "
          f"worst {max(revocations) * 1000:.0f} ms; rebinding worst "
          f"{max(rebindings) * 1000:.0f} ms")
    assert worst < BOUND


async def test_an_admin_token_revoked_through_one_is_refused_by_the_other(
    pair: tuple[str, str, Network, Path], backend: str
) -> None:
    a, b, network, config = pair
    token = await _admin_token(config, network)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{b}/api/v3/networks/me", headers=headers) as response:
            assert response.status == 200  # b has verified and cached it
        async with session.delete(f"{a}/api/v1/admin-token", headers=headers,
                                  json={"username": "ops"}) as response:
            assert response.status == 200
        started = time.monotonic()
        while time.monotonic() - started < 5:
            async with session.get(f"{b}/api/v3/networks/me", headers=headers) as response:
                if response.status == 401:
                    break
            await asyncio.sleep(0.002)
        elapsed = time.monotonic() - started
    print(f"\n{backend}: admin token revocation refused by the other process after "
          f"{elapsed * 1000:.0f} ms")
    assert elapsed < BOUND

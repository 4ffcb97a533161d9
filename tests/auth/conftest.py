"""A gateway with the shipped policies, a real upstream, and helpers to act as its clients."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web

from gateway.auth.passwords import hash_password
from gateway.config import load_config
from gateway.keys import STORE, TOKENS
from gateway.store import Network, Store, open_store
from gateway.testing.support import REPO, Clock, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import in_process_gateway

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Gateway:
    url: str
    app: web.Application
    session: aiohttp.ClientSession
    upstream: str
    networks: list[Network] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.app[STORE]

    async def network(self, *, secure: bool = False, region: str = "sg") -> Network:
        network = await self.store.create_network(f"net-{len(self.networks)}", region, secure)
        self.networks.append(network)
        return network

    async def admin_token(self, network: Network, username: str, role: str) -> str:
        if await self.store.admin_by_username(network.id, username) is None:
            await self.store.create_admin(network.id, username, role,
                                          hash_password("pw", log2_n=10))
        token, credential = await self.app[TOKENS].issue_admin(network.id, username, role, 86400)
        await self.store.record_credential(credential)
        return token

    async def login(self, network: Network, user_id: str = "alice", device_id: str = "dev-1",
                    path: str = "/api/v3/sessions", expect: int = 200,
                    **extra: Any) -> dict[str, Any]:
        body = {"userId": user_id, "deviceId": device_id,
                "deviceInfo": {"kind": "web", "model": "Gecko#Mozilla/5.0", "sdkVersion": "7"},
                **extra}
        async with self.session.post(f"{self.url}{path}", json=body,
                                     headers={"x-api-key": network.api_key}) as response:
            data: dict[str, Any] = await response.json()
            assert response.status == expect, data
            return data

    async def call(self, method: str, path: str, token: str | None = None,
                   **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, f"{self.url}{path}", headers=headers,
                                        **kwargs) as response:
            text = await response.text()
            try:
                import json

                body: Any = json.loads(text)
            except ValueError:
                body = text
            return response.status, body, response


def error(status: int, message: str) -> dict[str, Any]:
    from gateway.errors import code_for_status

    codes = {"Permission denied": 400301, "User is global banned.": 400312}
    return {"status": "error", "code": codes.get(message, code_for_status(status)),
            "message": message}


@pytest.fixture
async def gw(tmp_path: Path, clock: Clock) -> AsyncIterator[Gateway]:
    async with running_upstream("sg") as upstream:
        config = write_config(tmp_path, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
        })
        async with in_process_gateway(config, clock=clock) as (url, app), \
                aiohttp.ClientSession() as session:
            yield Gateway(url, app, session, upstream)


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    """A namespace of its own on the test Redis, removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        if os.environ.get("CI") == "true" or os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is required: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    namespace = f"test-login-{secrets.token_hex(6)}"
    yield namespace
    keys = await client.keys(f"{namespace}:*")
    if keys:
        await client.delete(*keys)
    await client.aclose()


def login_limits_config(store_config: Path, upstream: str, limits: dict[str, Any],
                        name: str) -> Path:
    """A config beside `store_config` on its store, with `limits` and the shipped
    policies, trusting 127.0.0.1 for X-Forwarded-For (each login from its own address)."""
    store = load_config(store_config, environ={}).store
    return write_config(store_config.parent, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                   "trusted_proxies": ["127.0.0.1/32"]},
        "store": {"url": store.url, "schema": store.schema},
        "limits": limits,
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
        "policies": [str(REPO / "policies" / "default.yaml")],
    }, name=name)


async def network_with_admin(config: Path, name: str) -> Network:
    """A network in `config`'s store with the admin ann (password `pw`)."""
    opened = await open_store(load_config(config, environ={}))
    try:
        network = await opened.create_network(name, "sg", secure=False)
        await opened.create_admin(network.id, "ann", "admin", hash_password("pw", log2_n=10))
    finally:
        await opened.close()
    return network

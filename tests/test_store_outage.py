"""The store unreachable (API.md section 1, 503): token checks keep answering from memory
for `store.max_staleness`, then fail closed with 503 JSON unless a rule says
`stale: serve`; /readyz says why; everything comes back by itself with the store.

PostgreSQL is cut with a TCP relay the test controls (the shared server keeps running);
SQLite is made unreadable by another connection holding an exclusive lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.keys import STORE
from gateway.testing.support import (
    POSTGRES_URL,
    drop_schema,
    free_port,
    unique_schema,
    write_config,
)
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import in_process_gateway
from tests.support import require_postgres

BOUND = 1.5  # store.max_staleness in these tests
STALE_POLICY = """
rules:
  - {name: healthz, match: {path: /healthz}, auth: public}
  - {name: readyz, match: {path: /readyz}, auth: public}
  - {name: sessions, match: {path: /api/v3/sessions, methods: [POST]}, auth: public}
  - {name: lenient, match: {path: "/lenient/**"}, auth: access_token, stale: serve}
  - {name: api, match: {path: "/api/**"}, auth: any_token}
"""


class Relay:
    """A loopback TCP relay to PostgreSQL that can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.difference_update((writer, up_writer))


@pytest.fixture
async def pg_relay() -> AsyncIterator[tuple[Relay, str, str]]:
    await require_postgres()
    target = int(POSTGRES_URL.rsplit(":", 1)[1].split("/")[0])
    relay = Relay(target)
    await relay.start()
    schema = unique_schema()
    try:
        yield relay, POSTGRES_URL.replace(f":{target}/", f":{relay.port}/"), schema
    finally:
        if relay.server is not None:
            await relay.cut()
        await drop_schema(schema)


def _config(folder: Path, upstream: str, store: dict[str, Any]) -> Path:
    policy = folder / "stale-policy.yaml"
    policy.write_text(STALE_POLICY)
    return write_config(folder, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
        "store": {"max_staleness": "1500ms", "feed_max_lag": "1s", **store},
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
        "policies": [str(policy)],
    })


async def _get(session: aiohttp.ClientSession, url: str, token: str | None = None
               ) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def _outage_and_recovery(url: str, token: str, cut: Any, restore: Any) -> None:
    async with aiohttp.ClientSession() as session:
        assert (await _get(session, f"{url}/api/x", token))[0] == 200
        cut_at = time.monotonic()
        await cut()
        # Within the bound, tokens already known keep working from memory.
        while time.monotonic() - cut_at < BOUND * 0.5:
            assert (await _get(session, f"{url}/api/x", token))[0] == 200
            await asyncio.sleep(0.05)
        # Past it: 503 JSON for the strict rule, the lenient one keeps serving.
        deadline = time.monotonic() + BOUND + 5
        while (await _get(session, f"{url}/api/x", token))[0] == 200:
            assert time.monotonic() < deadline, "never failed closed"
            await asyncio.sleep(0.1)
        status, body = await _get(session, f"{url}/api/x", token)
        assert status == 503 and body["code"] == 500000
        assert body["message"].startswith("token state is stale")
        assert (await _get(session, f"{url}/lenient/x", token))[0] == 200
        status, body = await _get(session, f"{url}/readyz")
        assert status == 503 and "token checks refused" in body["message"]
        assert (await _get(session, f"{url}/healthz"))[0] == 200  # alive all along
        await restore()
        deadline = time.monotonic() + 15
        while (await _get(session, f"{url}/api/x", token))[0] != 200:
            assert time.monotonic() < deadline, "did not recover with the store"
            await asyncio.sleep(0.1)
        while (await _get(session, f"{url}/readyz"))[0] != 200:
            assert time.monotonic() < deadline, "/readyz did not recover"
            await asyncio.sleep(0.1)


async def _login(url: str, api_key: str) -> str:
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/api/v3/sessions", headers={"x-api-key": api_key},
        json={"userId": "alice", "deviceId": "d1"},
    ) as response:
        body = await response.json()
        assert response.status == 200, body
        return str(body["accessToken"])


@pytest.mark.postgres
async def test_postgres_outage(tmp_path: Path, pg_relay: tuple[Relay, str, str]) -> None:
    relay, url_via_relay, schema = pg_relay
    async with running_upstream("sg") as upstream:
        config = _config(tmp_path, upstream,
                         {"url": url_via_relay, "schema": schema, "pool_size": 2})
        async with in_process_gateway(config) as (url, app):
            network = await app[STORE].create_network("n", "sg", False)
            token = await _login(url, network.api_key)
            await _outage_and_recovery(url, token, relay.cut, relay.start)


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=5, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_sqlite_file_locked_by_another_process(tmp_path: Path) -> None:
    """A write lock held elsewhere: nobody can revoke anything meanwhile, so the in-memory
    state stays exact and token checks go on; writes answer 503 after the busy timeout
    and change nothing; all is well once the lock goes."""
    async with running_upstream("sg") as upstream:
        config = _config(tmp_path, upstream, {})
        async with in_process_gateway(config) as (url, app), \
                aiohttp.ClientSession() as session:
            network = await app[STORE].create_network("n", "sg", False)
            token = await _login(url, network.api_key)
            lock = await asyncio.to_thread(_hold_write_lock, tmp_path / "var" / "gateway.db")
            try:
                started = time.monotonic()
                while time.monotonic() - started < BOUND * 2:  # past max_staleness
                    assert (await _get(session, f"{url}/api/x", token))[0] == 200
                    await asyncio.sleep(0.1)
                async with session.post(f"{url}/api/v3/sessions",
                                        headers={"x-api-key": network.api_key},
                                        json={"userId": "bob", "deviceId": "d2"}) as response:
                    body = await response.json()
                    assert response.status == 503, body
                    assert body["code"] == 500000 and response.headers["Retry-After"] == "1"
            finally:
                await asyncio.to_thread(lock.execute, "ROLLBACK")
                lock.close()
            assert await app[STORE].get_user(network.id, "bob") is None
            await _login(url, network.api_key)


def test_a_rule_may_only_say_refuse_or_serve(tmp_path: Path) -> None:
    from gateway.policy import PolicyError, load_policies

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: x, match: {path: /x}, auth: any_token, stale: maybe}\n")
    expected = r"rule 1 \('x'\): stale: got 'maybe', expected refuse or serve"
    with pytest.raises(PolicyError, match=expected):
        load_policies([str(bad)])

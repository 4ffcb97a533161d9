"""Each configuration in examples/ starts and does what its comments say.

A test copies the example with the folders it refers to, and changes only what a test
must: the listeners (free loopback ports), the upstream URLs (upstreams the test runs on
loopback) and, on PostgreSQL, the schema (one per run). Everything else is the file as
shipped. Loopback only; each test is bounded by its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.support import (
    POSTGRES_URL,
    REPO,
    drop_schema,
    free_port,
    unique_schema,
)
from gateway.testing.upstream import running_upstream
from tests.support import POSTGRES_REQUIRED, require_postgres

EXAMPLES = REPO / "examples"


def materialise(tmp_path: Path, name: str, upstreams: Mapping[str, str],
                store: Mapping[str, str] | None = None) -> Path:
    """examples/<name> in a copy of the layout it expects (examples/ beside policies/),
    listening on a free loopback port, every upstream URL replaced through `upstreams`."""
    root = tmp_path / "repo"
    if not root.exists():
        shutil.copytree(EXAMPLES, root / "examples")
        shutil.copytree(REPO / "policies", root / "policies")
    path = root / "examples" / name
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["server"]["http"] = {"host": "127.0.0.1", "port": free_port()}
    for region in raw["regions"].values():
        if isinstance(region, dict):
            region["upstreams"] = [upstreams[url] for url in region["upstreams"]]
    raw["store"].update(store or {})
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


async def cli(config: Path, *args: str) -> dict[str, Any]:
    code, out, err = await run_cli(*args, "--config", str(config), "--log-level", "warning")
    assert code == 0, err
    answer: dict[str, Any] = json.loads(out)
    return answer


async def login(session: aiohttp.ClientSession, url: str, api_key: str, user: str,
                host: str | None = None) -> str:
    headers = {"x-api-key": api_key, **({"Host": host} if host else {})}
    async with session.post(f"{url}/api/v3/sessions", headers=headers,
                            json={"userId": user, "deviceId": f"{user}-phone"}) as answer:
        assert answer.status == 200, await answer.text()
        token: str = (await answer.json())["accessToken"]
    return token


async def get(session: aiohttp.ClientSession, url: str, token: str | None = None,
              **headers: str) -> tuple[int, dict[str, Any]]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with session.get(url, headers=headers) as answer:
        body: dict[str, Any] = await answer.json(content_type=None)
        return answer.status, body


def seen_headers(echo: dict[str, Any]) -> dict[str, str]:
    """The headers the test upstream received, by lower-case name."""
    return {name.lower(): value for name, value in echo["headers"]}


@pytest.mark.timeout(60)
async def test_sidecar_fronts_one_service_on_loopback(tmp_path: Path) -> None:
    async with running_upstream("service") as service:
        config = materialise(tmp_path, "sidecar.yaml", {"http://127.0.0.1:8000": service})
        async with GatewayProcess(config) as gw, aiohttp.ClientSession() as session:
            network = await cli(config, "network", "create", "--name", "acme")
            assert network["region"] == "local"
            token = await login(session, gw.url, network["apiKey"], "bob")

            status, echo = await get(session, f"{gw.url}/api/v3/posts", token)
            assert (status, echo["upstream"], echo["path"]) == (200, "service", "/api/v3/posts")
            identity = seen_headers(echo)
            assert identity["x-gateway-user-id"] == "bob"
            assert identity["x-gateway-network-id"] == network["networkId"]
            assert "authorization" not in identity  # the token stays at the gateway

            # The example's own policy file: a public page, a closed prefix, nothing else.
            status, echo = await get(session, f"{gw.url}/status")
            assert (status, echo["path"]) == (200, "/status")
            status, refused = await get(session, f"{gw.url}/internal/metrics", token)
            assert (status, refused["message"]) == (403, "Permission denied")
            status, refused = await get(session, f"{gw.url}/elsewhere")
            assert (status, refused["message"]) == (404, "Not Found")
            # The policy from the example, not the test, decided: it is the shipped file.
            assert (config.parent / "sidecar-policy.yaml").read_bytes() == (
                EXAMPLES / "sidecar-policy.yaml").read_bytes()


@pytest.mark.timeout(90)
async def test_loadtest_serves_the_tokens_minted_into_its_store(tmp_path: Path) -> None:
    async with running_upstream("api-under-test") as api:
        config = materialise(tmp_path, "loadtest.yaml", {"http://127.0.0.1:9000": api})
        network = (await cli(config, "network", "create", "--name", "load"))["networkId"]
        sets = {}
        for kind, flags in (("valid", ()), ("expired", ("--expired",)),
                            ("revoked", ("--revoked",))):
            out = tmp_path / f"{kind}.csv"
            minted = await cli(config, "tokens", "mint", "--network", network,
                               "--users", "20", *flags, "--out", str(out))
            assert minted["count"] == 20
            with out.open(newline="") as rows:
                sets[kind] = [row["token"] for row in csv.DictReader(rows)]
        async with GatewayProcess(config) as gw, aiohttp.ClientSession() as session:
            for token in sets["valid"][:5]:
                status, echo = await get(session, f"{gw.url}/api/v3/feed", token)
                assert (status, echo["upstream"]) == (200, "api-under-test")
            status, refused = await get(session, f"{gw.url}/api/v3/feed", sets["expired"][0])
            assert (status, refused["message"]) == (401, "token expired")
            status, refused = await get(session, f"{gw.url}/api/v3/feed", sets["revoked"][0])
            assert (status, refused["message"]) == (401, "Invalid token")
            async with session.get(f"{gw.url}/metrics") as answer:
                assert answer.status == 200  # two workers: one answered


# --- edge: two instances on PostgreSQL behind HAProxy ----------------------------------


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None)


@contextlib.asynccontextmanager
async def running_haproxy(config: Path, timeout: float = 15.0) -> AsyncIterator[None]:
    binary = haproxy_binary()
    assert binary is not None
    check = await asyncio.create_subprocess_exec(
        binary, "-c", "-q", "-f", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(check.communicate(), timeout)
    assert check.returncode == 0, out.decode()
    log = config.with_suffix(".log")
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(binary, "-db", "-f", str(config),
                                                    stdout=sink, stderr=sink)
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def haproxy_config(tmp_path: Path, ports: Mapping[int, int]) -> Path:
    """examples/edge-haproxy.cfg with its loopback ports moved to the test's."""
    text = (EXAMPLES / "edge-haproxy.cfg").read_text(encoding="utf-8")
    found = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)}
    assert found == set(ports), f"the example's ports changed: {sorted(found)}"
    path = tmp_path / "haproxy.cfg"
    path.write_text(re.sub(r"127\.0\.0\.1:(\d+)",
                           lambda m: f"127.0.0.1:{ports[int(m.group(1))]}", text))
    return path


async def until(probe: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        await asyncio.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.timeout(90)
async def test_edge_two_instances_on_postgresql_behind_haproxy(tmp_path: Path) -> None:
    await require_postgres()
    if haproxy_binary() is None:
        reason = "haproxy is not installed (Debian: apt-get install haproxy)"
        if POSTGRES_REQUIRED:  # CI installs it
            pytest.fail(reason)
        pytest.skip(reason)
    schema = unique_schema()
    try:
        async with contextlib.AsyncExitStack() as stack:
            upstreams = {f"http://127.0.0.1:{port}": await stack.enter_async_context(
                running_upstream(region)) for port, region in
                ((9001, "eu"), (9002, "sg"), (9003, "us"))}
            config = materialise(tmp_path, "edge.yaml", upstreams,
                                 {"url": POSTGRES_URL, "schema": schema})
            await cli(config, "init")  # once, before the instances: one CA, one key
            gw1 = GatewayProcess(config)
            second = free_port()  # the same file, moved by the environment as the example says
            gw2 = GatewayProcess(config, env={
                "GATEWAY_SERVER_HTTP": f"{{host: 127.0.0.1, port: {second}}}"})
            gw2.port = second  # read from the file by default
            for gw in (gw1, gw2):
                await stack.enter_async_context(gw)
            front = free_port()
            await stack.enter_async_context(running_haproxy(haproxy_config(
                tmp_path, {8080: front, 8081: gw1.port, 8082: gw2.port})))
            session = await stack.enter_async_context(aiohttp.ClientSession())
            edge = f"http://127.0.0.1:{front}"

            async def ready() -> bool:
                with contextlib.suppress(aiohttp.ClientError):
                    return (await get(session, f"{edge}/readyz"))[0] == 200
                return False
            await until(ready)

            network = await cli(config, "network", "create", "--name", "acme", "--region", "eu")
            token = await login(session, edge, network["apiKey"], "bob", "api.eu.example.com")
            # Through HAProxy, by Host, to the eu upstream; HAProxy's X-Forwarded-For is
            # believed (trusted_proxies) and the gateway appends HAProxy's address.
            status, echo = await get(session, f"{edge}/api/v3/posts", token,
                                     Host="api.eu.example.com", **{"X-Forwarded-For": "6.6.6.6"})
            assert (status, echo["upstream"]) == (200, "eu")
            assert seen_headers(echo)["x-forwarded-for"] == "127.0.0.1, 127.0.0.1"
            # One store: the token checks on both instances, a revocation through one
            # holds on the other.
            for gw in (gw1, gw2):
                status, valid = await get(session, f"{gw.url}/api/v3/sessions", token)
                assert (status, valid["userId"]) == (200, "bob")
            async with session.delete(f"{gw1.url}/api/v4/sessions",
                                      headers={"Authorization": f"Bearer {token}"}) as answer:
                assert answer.status == 200

            async def refused_by_gw2() -> bool:
                return (await get(session, f"{gw2.url}/api/v3/sessions", token))[0] == 401
            await until(refused_by_gw2, timeout=2.0)
    finally:
        await drop_schema(schema)

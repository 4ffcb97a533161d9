"""Upstream faults against a real gateway process (docs/RELIABILITY.md): an upstream that
flaps between up and down, resets mid-body, answers slowly or hangs up. Clients see 200,
a clean failover, or the contract's 502/504 JSON, never a wait past the timeouts; the
gateway's open files and memory return to their level afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.testing.process import GatewayProcess
from gateway.testing.support import free_port, write_config
from gateway.testing.upstream import running_upstream, upstream_app
from tests.proxy.conftest import PROXY_POLICY

READ_TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0
FAULT_SECONDS = 6.0
CLIENTS = 16
ERRORS = {502: "upstream unavailable", 504: "upstream timeout"}


@contextlib.asynccontextmanager
async def flapping_upstream(port: int, period: float) -> AsyncIterator[Counter[str]]:
    """An upstream on `port` that is up for `period`, then down for `period`, and so on."""
    flips: Counter[str] = Counter()

    async def flap() -> None:
        while True:
            runner = web.AppRunner(upstream_app("flappy"), access_log=None,
                                   shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
            flips["up"] += 1
            await asyncio.sleep(period)
            await runner.cleanup()
            flips["down"] += 1
            await asyncio.sleep(period)

    task = asyncio.create_task(flap())
    try:
        yield flips
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


PATHS = [("api.sg.amity.co", "/pub/echo"),       # flappy + stable: must fail over
         ("api.eu.amity.co", "/pub/echo"),       # flappy only: 200 or 502
         ("api.us.amity.co", "/pub/reset"),      # reset mid-body
         ("api.us.amity.co", "/pub/hangup"),     # no answer at all
         ("api.us.amity.co", "/pub/slow?delay=3")]  # past read_timeout


async def _client(session: aiohttp.ClientSession, url: str, host: str, path: str,
                  stop_at: float, outcomes: Counter[str], slowest: list[float]) -> None:
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            async with session.get(f"{url}{path}", headers={"Host": host}) as response:
                status = response.status
                body = await response.read()
                if status in ERRORS:
                    assert (await response.json())["message"] == ERRORS[status]
        except aiohttp.ClientPayloadError:
            # The upstream reset after sending its head: the gateway cuts the client's
            # body too rather than pretend it was complete.
            assert path == "/pub/reset" and status == 200
            outcomes[f"{host} {path} cut"] += 1
            continue
        elapsed = time.monotonic() - started
        slowest.append(elapsed)
        if host == "api.sg.amity.co":
            assert status == 200, (status, body[:200])
        elif path.startswith("/pub/echo"):
            assert status in (200, 502), (status, body[:200])
        elif path.startswith("/pub/slow"):
            assert status == 504, (status, body[:200])
        else:  # /pub/hangup: the upstream sent nothing at all
            assert status == 502, (status, body[:200])
        outcomes[f"{host} {path} {status}"] += 1


async def test_flapping_resetting_and_slow_upstreams(tmp_path: Path) -> None:
    flappy_port = free_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text(PROXY_POLICY)
    async with running_upstream("stable") as stable, running_upstream("faulty") as faulty, \
            flapping_upstream(flappy_port, 0.25) as flips:
        flappy = f"http://127.0.0.1:{flappy_port}"
        config = write_config(tmp_path, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                       "access_log": False},
            "regions": {
                "default": "sg",
                "sg": {"hosts": ["api.sg.amity.co"], "upstreams": [flappy, stable]},
                "eu": {"hosts": ["api.eu.amity.co"], "upstreams": [flappy]},
                "us": {"hosts": ["api.us.amity.co"], "upstreams": [faulty]},
            },
            "proxy": {"read_timeout": "1s", "connect_timeout": "1s",
                      "upstream_cooldown": "200ms"},
            "policies": [str(policy)],
        })
        async with GatewayProcess(config) as gateway:
            assert gateway.proc is not None
            pid = gateway.proc.pid
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT + CONNECT_TIMEOUT + 2)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                # Warm-up on healthy paths, then the baseline.
                for _ in range(50):
                    async with session.get(f"{gateway.url}/pub/echo",
                                           headers={"Host": "api.us.amity.co"}) as response:
                        assert response.status == 200
                files_before, rss_before = _open_files(pid), _rss_kib(pid)

                outcomes: Counter[str] = Counter()
                slowest: list[float] = []
                stop_at = time.monotonic() + FAULT_SECONDS
                await asyncio.gather(*(
                    _client(session, gateway.url, *PATHS[i % len(PATHS)], stop_at,
                            outcomes, slowest)
                    for i in range(CLIENTS)
                ))
            assert flips["down"] >= 5, flips
            assert sum(outcomes.values()) > 200, outcomes
            # Failover happened and errors were the contract's, never a hang.
            assert any(k.startswith("api.eu.amity.co /pub/echo 502") for k in outcomes), outcomes
            assert max(slowest) < READ_TIMEOUT + CONNECT_TIMEOUT + 1.0, max(slowest)

            await asyncio.sleep(2 * READ_TIMEOUT)  # idle upstream connections time out
            files_after, rss_after = _open_files(pid), _rss_kib(pid)
            print(f"upstream faults: {dict(outcomes)}; slowest {max(slowest):.2f}s; open files"
                  f" {files_before}->{files_after}; RSS {rss_before}->{rss_after} KiB")
            assert files_after <= files_before + 4, (files_before, files_after)
            assert rss_after <= rss_before + 8 * 1024, (rss_before, rss_after)
            assert await gateway.stop() == 0

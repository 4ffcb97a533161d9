"""`gateway serve` as a real process: start-up, operations endpoints, signals, workers."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from gateway.config import load_config
from gateway.store import open_store
from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.support import write_config


async def test_fresh_folder_serves_healthz_within_ten_seconds(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    started = time.monotonic()
    async with GatewayProcess(config) as gateway:
        elapsed = time.monotonic() - started
        assert elapsed < 10
        assert (tmp_path / "certs" / "ca.pem").exists()  # serve ran init first
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{gateway.url}/readyz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ready"
            async with session.get(f"{gateway.url}/no/such/route") as response:
                assert response.status == 404
                assert response.content_type == "application/json"
                assert await response.json() == {
                    "status": "error", "code": 400400, "message": "Not Found"}
            async with session.get(f"{gateway.url}/metrics") as response:
                text = await response.text()
                assert response.status == 200
                expected = 'gateway_requests_total{method="GET",route="readyz",status="200"} 1.0'
                assert expected in text
                assert "gateway_feed_staleness_seconds" in text
            # The HTTPS listener presents the certificate init made, signed by the gateway CA.
            tls = aiohttp.TCPConnector(ssl=__import__("ssl").create_default_context(
                cafile=str(tmp_path / "certs" / "ca.pem")))
            async with aiohttp.ClientSession(connector=tls) as secure, secure.get(
                f"https://localhost:{gateway.https_port}/healthz"
            ) as response:
                assert response.status == 200
        assert await gateway.stop() == 0


async def test_bad_config_stops_start_up_with_the_key_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"server": {"http": {"host": "127.0.0.1", "port": "eighty"}}})
    code, _out, err = await run_cli("serve", "--config", str(config), timeout=30)
    assert code == 2
    assert "server.http.port" in err and "eighty" in err


def _reload_count(metrics: str, result: str) -> float:
    match = re.search(rf'gateway_config_reloads_total{{result="{result}"}} ([0-9.]+)', metrics)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize(
    "broken",
    [{"surprise": 1}, {"server": {"http": {"host": "127.0.0.1", "port": "eighty"}}}],
    ids=["unknown-key", "port-eighty"],
)
async def test_sighup_refuses_a_broken_config_and_keeps_serving(
    tmp_path: Path, broken: dict[str, object]
) -> None:
    config = write_config(tmp_path)
    good_text = config.read_text()
    async with GatewayProcess(config) as gateway, aiohttp.ClientSession() as session:
        raw = yaml.safe_load(good_text)
        for section, values in broken.items():
            if isinstance(values, dict) and section in raw:
                raw[section].update(values)
            else:
                raw[section] = values
        config.write_text(yaml.safe_dump(raw))
        gateway.signal(signal.SIGHUP)
        metrics = ""
        for _ in range(100):
            async with session.get(f"{gateway.url}/metrics") as response:
                metrics = await response.text()
            if _reload_count(metrics, "refused"):
                break
            await asyncio.sleep(0.05)
        assert _reload_count(metrics, "refused") == 1
        assert "reload refused" in gateway.log()
        async with session.get(f"{gateway.url}/healthz") as response:
            assert response.status == 200

        config.write_text(good_text)  # a valid config is taken
        gateway.signal(signal.SIGHUP)
        for _ in range(100):
            async with session.get(f"{gateway.url}/metrics") as response:
                metrics = await response.text()
            if _reload_count(metrics, "ok"):
                break
            await asyncio.sleep(0.05)
        assert _reload_count(metrics, "ok") == 1
    assert gateway.proc is not None and gateway.proc.returncode == 0


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.update(int(child) for child in children)
    return found


async def test_workers_share_the_port_follow_the_feed_and_are_replaced(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    async with GatewayProcess(config_path, "--workers", "2") as gateway:
        assert gateway.proc is not None
        workers = _children(gateway.proc.pid)
        assert len(workers) == 2

        store = await open_store(load_config(config_path, environ={}))
        try:
            seq = await store.publish("test.workers", None, {})
        finally:
            await store.close()
        await asyncio.sleep(0.3)
        connector = aiohttp.TCPConnector(force_close=True)  # new connections spread over workers
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(20):
                async with session.get(f"{gateway.url}/readyz") as response:
                    assert (await response.json())["feedSeq"] >= seq

            victim = sorted(workers)[0]
            __import__("os").kill(victim, signal.SIGKILL)
            for _ in range(20):  # the other worker keeps serving meanwhile
                async with session.get(f"{gateway.url}/healthz") as response:
                    assert response.status == 200
            for _ in range(100):
                current = _children(gateway.proc.pid)
                if len(current) == 2 and victim not in current:
                    break
                await asyncio.sleep(0.1)
            assert len(current) == 2 and victim not in current
        assert await gateway.stop() == 0

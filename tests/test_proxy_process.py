"""The proxy in a real `gateway serve` process: big bodies, drains, policy reloads."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.support import free_port
from gateway.testing.upstream import pattern_bytes, running_upstream
from tests.proxy.conftest import PROXY_POLICY, proxy_config

SIZE = 50 * 1024 * 1024
MEMORY_BOUND = 40 * 1024 * 1024  # the gateway's peak RSS may grow by less than this


def _memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


async def _upload_body(digest: hashlib._Hash) -> AsyncIterator[bytes]:
    chunk = pattern_bytes(1024 * 1024)
    for _ in range(SIZE // len(chunk)):
        digest.update(chunk)
        yield chunk


async def test_50_mb_up_and_down_with_matching_sha256_and_flat_memory(tmp_path: Path) -> None:
    async with running_upstream("sg") as sg:
        config = proxy_config(tmp_path, {"eu": sg, "sg": sg, "us": sg}, free_port(),
                              {"proxy": {"read_timeout": "30s"}})
        async with GatewayProcess(config) as gateway, aiohttp.ClientSession() as session:
            assert gateway.proc is not None
            pid = gateway.proc.pid
            async with session.get(f"{gateway.url}/pub/warm-up") as response:
                assert response.status == 200
            baseline = _memory(pid, "VmRSS")

            sent = hashlib.sha256()
            async with session.post(f"{gateway.url}/pub/upload", data=_upload_body(sent),
                                    headers={"Host": "api.sg.amity.co"}) as response:
                assert response.status == 200
                echoed = await response.json()
            assert echoed["size"] == SIZE and echoed["sha256"] == sent.hexdigest()

            expected = hashlib.sha256(pattern_bytes(SIZE)).hexdigest()
            for query in ("", "&length=1"):  # chunked, then with a Content-Length
                received = hashlib.sha256()
                size = 0
                async with session.get(f"{gateway.url}/pub/download?size={SIZE}{query}") as resp:
                    assert resp.status == 200
                    async for chunk in resp.content.iter_any():
                        received.update(chunk)
                        size += len(chunk)
                assert (size, received.hexdigest()) == (SIZE, expected)

            peak = _memory(pid, "VmHWM")
            print(f"\ngateway RSS {baseline / 2**20:.1f} MiB before, peak {peak / 2**20:.1f} MiB")
            assert peak - baseline < MEMORY_BOUND


async def test_sigterm_lets_in_flight_requests_finish_and_exits_zero(tmp_path: Path) -> None:
    async with running_upstream("sg") as sg:
        config = proxy_config(tmp_path, {"eu": sg, "sg": sg, "us": sg}, free_port())
        gateway = await GatewayProcess(config).start()
        async with aiohttp.ClientSession() as session:
            async def slow_call() -> int:
                async with session.get(f"{gateway.url}/pub/slow?delay=1.5") as response:
                    await response.read()
                    return response.status

            in_flight = [asyncio.create_task(slow_call()) for _ in range(20)]
            await asyncio.sleep(0.5)  # all 20 are now waiting on the upstream
            gateway.signal(signal.SIGTERM)
            statuses = await asyncio.gather(*in_flight)
        assert statuses == [200] * 20
        assert await gateway.stop() == 0
        assert "draining" in gateway.log()


async def test_broken_policy_is_refused_at_start_and_at_sighup(tmp_path: Path) -> None:
    async with running_upstream("sg") as sg:
        config = proxy_config(tmp_path, {"eu": sg, "sg": sg, "us": sg}, free_port())
        policy = tmp_path / "proxy-policy.yaml"
        broken = PROXY_POLICY.replace("auth: deny", "auth: maybe")

        policy.write_text(broken)
        code, _out, err = await run_cli("serve", "--config", str(config), timeout=30)
        assert code == 2
        assert "proxy-policy.yaml" in err and "'denied'" in err and "auth" in err

        policy.write_text(PROXY_POLICY)
        async with GatewayProcess(config) as gateway, aiohttp.ClientSession() as session:
            policy.write_text(broken)
            gateway.signal(signal.SIGHUP)
            for _ in range(100):
                if "reload refused" in gateway.log():
                    break
                await asyncio.sleep(0.05)
            assert "reload refused" in gateway.log() and "proxy-policy.yaml" in gateway.log()
            async with session.get(f"{gateway.url}/pub/secret/x") as response:
                assert response.status == 403  # the old rules still serve

            policy.write_text(PROXY_POLICY.replace("auth: deny", "auth: public"))
            gateway.signal(signal.SIGHUP)
            status = 0
            for _ in range(100):
                async with session.get(f"{gateway.url}/pub/secret/x") as response:
                    status = response.status
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            assert status == 200  # the valid new rules are taken


async def test_unknown_key_at_start(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, {"eu": "http://a", "sg": "http://a", "us": "http://a"}, 9,
                          {"proxy": {"retries": 3}})
    code, _out, err = await run_cli("serve", "--config", str(config), "--workers", "2")
    assert code == 2 and "proxy.retries" in err

"""/metrics under `gateway serve --workers 2`: whichever worker answers a scrape shows
what the whole group served, and a replaced worker's counts stay counted."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from prometheus_client import parser
from prometheus_client.metrics_core import Metric

from gateway.testing.process import GatewayProcess
from gateway.testing.support import free_port
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import proxy_config
from tests.workers import metrics_dir, settled, wait_listening, worker_pids

_parse = cast(Callable[[str], Iterable[Metric]], parser.text_string_to_metric_families)
ROUND = 100  # requests per round, each on a connection of its own
EU = {"Host": "api.eu.amity.co"}  # region eu: one upstream, so every forward is "ok"


def total(text: str, sample: str, **labels: str) -> float:
    """The sum of `sample` over the series whose labels include `labels`."""
    return sum(s.value for family in _parse(text) for s in family.samples
               if s.name == sample and labels.items() <= s.labels.items())


async def send(url: str, count: int) -> None:
    connector = aiohttp.TCPConnector(force_close=True)  # new connections spread over workers
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(count):
            async with session.get(f"{url}/pub/item/{i}", headers=EU) as response:
                assert response.status == 200
                await response.read()


async def scrapes(url: str, count: int) -> list[str]:
    texts = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(count):
            async with session.get(f"{url}/metrics") as response:
                assert response.status == 200
                texts.append(await response.text())
    return texts


def assert_counts(text: str, sent: int) -> None:
    assert total(text, "gateway_requests_total", route="public") == sent
    assert total(text, "gateway_requests_total", route="public", status="200") == sent
    assert total(text, "gateway_request_duration_seconds_count", route="public") == sent
    assert total(text, "gateway_request_duration_seconds_bucket", route="public",
                 le="+Inf") == sent
    assert total(text, "gateway_upstream_requests_total", region="eu") == sent
    assert total(text, "gateway_upstream_requests_total", region="eu", outcome="ok") == sent
    assert total(text, "gateway_upstream_duration_seconds_count", region="eu") == sent


@pytest.mark.timeout(90)
async def test_any_worker_shows_the_requests_of_both(tmp_path: Path) -> None:
    async with running_upstream("eu") as upstream:
        config = proxy_config(tmp_path, {"eu": upstream, "sg": upstream, "us": upstream},
                              free_port())
        gateway = GatewayProcess(config, "--workers", "2", env={"TMPDIR": str(tmp_path)})
        async with gateway:
            assert gateway.proc is not None
            await wait_listening(gateway.port, 2)
            shared = metrics_dir(tmp_path)
            sent = 0
            for _ in range(5):  # both workers serve some (each connection goes to either)
                await send(gateway.url, ROUND)
                sent += ROUND
                served = await settled(shared, "public", sent)
                assert sum(served.values()) == sent, served
                if len(served) == 2:
                    break
            assert set(served) == worker_pids(gateway.proc.pid), served

            texts = await scrapes(gateway.url, 20)
            for text in texts:
                assert_counts(text, sent)
                assert total(text, "gateway_feed_last_seq") >= 0
            answered = [total(text, "gateway_requests_total", route="metrics") for text in texts]
            assert answered == sorted(answered)  # never back, whoever answered
            scraped = await settled(shared, "metrics", len(texts))
            assert len(scraped) == 2, scraped  # both answered scrapes

            # A worker killed and replaced: what it served stays in the totals.
            victim = min(worker_pids(gateway.proc.pid))
            os.kill(victim, signal.SIGKILL)
            for _ in range(100):
                current = worker_pids(gateway.proc.pid)
                if len(current) == 2 and victim not in current:
                    break
                await asyncio.sleep(0.1)
            assert len(current) == 2 and victim not in current
            await wait_listening(gateway.port, 2)
            for text in await scrapes(gateway.url, 10):
                assert_counts(text, sent)
            await send(gateway.url, ROUND)
            sent += ROUND
            served = await settled(shared, "public", sent)
            assert sum(served.values()) == sent and len(served) == 3, served
            for text in await scrapes(gateway.url, 10):
                assert_counts(text, sent)
        assert gateway.proc.returncode == 0
        assert not shared.exists()  # removed at exit

"""Helpers for tests of `gateway serve --workers N`: which workers exist, when all of them
listen, and what each one served (read from its own metrics files)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric

_merge = cast(Callable[[list[str]], Iterable[Metric]], multiprocess.MultiProcessCollector.merge)


def worker_pids(supervisor: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port` (one per worker with SO_REUSEPORT)."""
    local = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        count += fields[1] == local and fields[3] == "0A"  # TCP_LISTEN
    return count


async def wait_listening(port: int, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while listeners(port) < count:
        assert time.monotonic() < deadline, f"{listeners(port)} of {count} listening on {port}"
        await asyncio.sleep(0.05)


def metrics_dir(tmp: Path) -> Path:
    """The directory `serve` shares the workers' metrics in, made under TMPDIR=`tmp`."""
    found = list(tmp.glob("gateway-metrics-*"))
    assert len(found) == 1, found
    return found[0]


def served_by_worker(shared: Path, route: str, status: int | None = None) -> dict[int, float]:
    """gateway_requests_total of `route` (and `status`) as each worker's own files hold it
    (what it wrote by its last periodic write), by process id."""
    served: dict[int, float] = {}
    for file in shared.glob("counter_*.db"):
        pid = int(file.name.removeprefix("counter_").split("-")[0])
        for metric in _merge([str(file)]):
            for sample in metric.samples:
                if (sample.name == "gateway_requests_total" and sample.labels["route"] == route
                        and status in (None, int(sample.labels["status"]))):
                    served[pid] = served.get(pid, 0.0) + sample.value
    return served


async def settled(shared: Path, route: str, total: float, status: int | None = None,
                  timeout: float = 15.0) -> dict[int, float]:
    """`served_by_worker` once the workers' files add up to `total` (each worker writes
    every FLUSH_INTERVAL; a loaded machine may take longer), or at the time-out."""
    deadline = time.monotonic() + timeout
    while True:
        served = served_by_worker(shared, route, status)
        if sum(served.values()) >= total or time.monotonic() > deadline:
            return served
        await asyncio.sleep(0.1)

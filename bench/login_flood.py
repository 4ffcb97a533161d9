"""Console login under a flood: how long one legitimate admin's login takes meanwhile.

    .venv/bin/python bench/login_flood.py                      # SQLite store, 1 worker
    .venv/bin/python bench/login_flood.py --store postgres     # GATEWAY_TEST_POSTGRES_URL
    .venv/bin/python bench/login_flood.py --redis redis://127.0.0.1:6379/0 --workers 2

A real `gateway serve` process on 127.0.0.1 with the default `limits:`; its own loopback
peer is a trusted proxy, so each attempt's X-Forwarded-For plays a client address.
`--attempts` (2,000) wrong-password logins from `--addresses` (50) addresses spread over
`--prefixes` (10) /24s, for `--usernames` (400) usernames (spraying, so the per-username
limit is not what stops them), `--concurrency` (64) at a time, from a process of its own
at nice 10; meanwhile one admin, who signed in from its own address before the flood
began, logs in with the right password every second until the flood ends
(`--cold-admin`: from a new address every time). Prints the admin's login times (p50,
p99, max) and what the flood got (401: its password was checked; 429: refused before any
hashing). Exit status 1 if an admin login failed or its p99 is over `--target` (1 s).
`--runs N` repeats the flood on a fresh gateway N times and pools the admin's logins
(about one per second of flood each run). Bounded: a fixed number of attempts, 30 s a
request, `--deadline` (600 s) a flood; nothing but loopback is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from gateway.auth.passwords import hash_password
from gateway.config import load_config
from gateway.store import Network, open_store
from gateway.testing.process import GatewayProcess
from gateway.testing.support import POSTGRES_URL, drop_schema, free_port, unique_schema
from gateway.testing.support import write_config as support_write_config

REPO = Path(__file__).resolve().parents[1]

ADMIN, ADMIN_PASSWORD, ADMIN_ADDRESS = "ops", "correct horse battery", "192.0.2.10"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


def _addresses(count: int, prefixes: int) -> list[str]:
    """`count` addresses in `prefixes` /24s of 10.77.0.0/16, dealt round-robin."""
    return [f"10.77.{i % prefixes}.{i // prefixes + 1}" for i in range(count)]


async def _seed(config: Path) -> Network:
    store = await open_store(load_config(config, environ={}))
    try:
        network = await store.create_network("flood", "sg", secure=False)
        # The real cost: the admin's hash has the default parameters (scrypt, 32 MiB).
        await store.create_admin(network.id, ADMIN, "admin", hash_password(ADMIN_PASSWORD))
    finally:
        await store.close()
    return network


async def _post(session: aiohttp.ClientSession, url: str, network: Network, username: str,
                password: str, client: str) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/console/v1/login",
                                json={"username": username, "password": password},
                                headers={"x-api-key": network.api_key,
                                         "X-Forwarded-For": client}) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0  # no answer: counted apart
    return status, time.perf_counter() - started


def _flood_process(url: str, network: Network, args: argparse.Namespace) -> Counter[int]:
    """The flood runs in a process of its own, so its client's event loop does not delay
    the admin's measured logins, and at nice 10: it stands for clients on other machines,
    whose CPU the gateway would not share."""
    os.nice(10)
    return asyncio.run(_flood(url, network, args))


async def _flood(url: str, network: Network, args: argparse.Namespace) -> Counter[int]:
    addresses = _addresses(args.addresses, args.prefixes)
    statuses: Counter[int] = Counter()
    attempts = iter(range(args.attempts))
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def worker() -> None:
            for n in attempts:
                status, _elapsed = await _post(session, url, network, f"user{n % args.usernames}",
                                               secrets.token_urlsafe(8),
                                               addresses[n % len(addresses)])
                statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return statuses


async def _admin(url: str, network: Network, done: asyncio.Event,
                 cold: bool) -> list[tuple[int, float]]:
    """The legitimate admin: one login a second (a new connection each, as a browser
    returning after a while would), until the flood is over. `cold`: from a new address
    each time, so no earlier success from there puts it first in the pool's line."""
    samples: list[tuple[int, float]] = []
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT,
                                     cookie_jar=aiohttp.DummyCookieJar(),
                                     connector=aiohttp.TCPConnector(force_close=True)) as session:
        while not done.is_set():
            tick = time.perf_counter()
            address = f"192.0.2.{len(samples) % 250 + 1}" if cold else ADMIN_ADDRESS
            samples.append(await _post(session, url, network, ADMIN, ADMIN_PASSWORD, address))
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    return samples


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def run_once(args: argparse.Namespace) -> tuple[Counter[int], float,
                                                     list[tuple[int, float]]]:
    """One flood against a fresh gateway: the flood's answers, its length, the admin's
    logins."""
    with tempfile.TemporaryDirectory(prefix="login-flood-") as folder:
        store: dict[str, Any] = {"url": "sqlite:///var/gateway.db"}
        schema = None
        if args.store == "postgres":
            schema = unique_schema()
            store = {"url": POSTGRES_URL, "schema": schema}
        limits: dict[str, Any] = {}
        if args.redis:
            limits = {"redis_url": args.redis,
                      "redis_namespace": f"login-flood-{secrets.token_hex(4)}"}
        config = support_write_config(Path(folder), {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                       "trusted_proxies": ["127.0.0.1/32"], "access_log": False,
                       "workers": args.workers},
            "store": store,
            **({"limits": limits} if limits else {}),
        })
        try:
            network = await _seed(config)
            async with GatewayProcess(config) as gateway:
                # The admin signed in before the flood began (not counted).
                async with aiohttp.ClientSession() as session:
                    before = await _post(session, gateway.url, network, ADMIN,
                                         ADMIN_PASSWORD, ADMIN_ADDRESS)
                    assert before[0] == 200, before
                done = asyncio.Event()
                admin = asyncio.create_task(_admin(gateway.url, network, done,
                                                   args.cold_admin))
                started = time.perf_counter()
                spawn = multiprocessing.get_context("spawn")
                try:
                    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                        flood = asyncio.get_running_loop().run_in_executor(
                            pool, _flood_process, gateway.url, network, args)
                        statuses = await asyncio.wait_for(flood, args.deadline)
                finally:
                    done.set()
                flood_seconds = time.perf_counter() - started
                samples = await admin
        finally:
            if schema is not None:
                await drop_schema(schema)
    return statuses, flood_seconds, samples


def _admin_figures(samples: list[tuple[int, float]]) -> dict[str, Any]:
    ok = [elapsed for status, elapsed in samples if status == 200]
    return {"logins": len(samples), "ok": len(ok),
            "failed": Counter(str(s) for s, _ in samples if s != 200),
            "p50_ms": round(statistics.median(ok) * 1000) if ok else None,
            "p99_ms": round(_percentile(ok, 0.99) * 1000) if ok else None,
            "max_ms": round(max(ok) * 1000) if ok else None}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """`--runs` floods one after the other, each on a fresh gateway; the admin's logins of
    all of them pooled (a run gives about one a second of flood)."""
    statuses: Counter[int] = Counter()
    samples: list[tuple[int, float]] = []
    per_run = []
    for _ in range(args.runs):
        run_statuses, seconds, run_samples = await run_once(args)
        statuses.update(run_statuses)
        samples += run_samples
        per_run.append({"flood_seconds": round(seconds, 1),
                        "flood_statuses": {str(k): v for k, v in sorted(run_statuses.items())},
                        **_admin_figures(run_samples)})
    return {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "store": args.store, "redis": bool(args.redis), "workers": args.workers,
        "cold_admin": args.cold_admin,
        "flood": {"runs": args.runs, "attempts_per_run": args.attempts,
                  "addresses": args.addresses, "prefixes": args.prefixes,
                  "statuses": {str(k): v for k, v in sorted(statuses.items())}},
        "admin": _admin_figures(samples),
        "per_run": per_run,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="floods, each on a fresh gateway")
    parser.add_argument("--addresses", type=int, default=50)
    parser.add_argument("--prefixes", type=int, default=10)
    parser.add_argument("--usernames", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--redis", help="limits.redis_url, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--cold-admin", action="store_true",
                        help="the admin logs in from a new address every time")
    parser.add_argument("--target", type=float, default=1.0, help="admin p99 bound, seconds")
    parser.add_argument("--deadline", type=float, default=600.0)
    args = parser.parse_args()
    if args.redis and not args.redis.startswith(("redis://127.0.0.1", "redis://localhost")):
        parser.error("--redis must be on loopback")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    admin = result["admin"]
    good = admin["ok"] == admin["logins"] > 0 and admin["p99_ms"] <= args.target * 1000
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

"""Rolling restart of PostgreSQL-backed gateways behind HAProxy, under steady traffic.

What docs/OPERATIONS.md describes, done for real on loopback:

- N `gateway serve` processes (default 2) on one PostgreSQL schema, sharing one folder
  (so one CA, one key-encryption key), `server.trusted_proxies` = HAProxy's address;
- a loopback upstream (tests/upstream.py) behind them;
- HAProxy in front: health check `GET /readyz`, `option redispatch`, L7 retries for
  idempotent requests only, a fallback backend checked on /healthz for when no instance
  is ready, errors in the contract's JSON, runtime API on a loopback TCP port;
- a client sending a steady stream through HAProxy: public proxied GET and POST, a
  token-checked proxied GET and the built-in token check `GET /api/v3/sessions`, all
  with one valid access token;
- each instance restarted in turn while the traffic flows, then revocations made through
  one instance and timed until the other refuses the token (the change-feed bound);
- what clients get with no instance ready (fallback) and with none at all (HAProxy).

Two restart procedures:

- `drain` (the documented one): `set server gateways/<name> state drain` on HAProxy's
  runtime API, wait until HAProxy has no request in flight on it, SIGTERM, wait for exit
  0, start again, wait for /readyz 200, `state ready`, wait until HAProxy's health check
  has it UP again, next instance.
- `sigterm` (what an orchestrator that only sends SIGTERM does): SIGTERM, wait for exit
  0, start again, wait until HAProxy has it UP again. Whether requests fail then depends
  on the gateway announcing its drain on /readyz before it closes its listener, which
  it does not (see docs/OPERATIONS.md, "Rolling restart").

    .venv/bin/python bench/reliability/rolling_restart.py                  # drain, 2 instances
    .venv/bin/python bench/reliability/rolling_restart.py --procedure sigterm
    .venv/bin/python bench/reliability/rolling_restart.py --instances 3 --rate 300 --json out.json

Needs PostgreSQL (GATEWAY_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test)
and `haproxy` (Debian: apt-get install haproxy). Exit status 0 when no request failed and
every revocation reached the other instance within FEED_BOUND (500 ms), 1 otherwise (the
logs are kept and their folder printed), 2 when a prerequisite is missing.
tests/reliability/test_rolling_restart.py runs the same code under pytest.
"""

# Helpers take explicit time limits, as in tests/ (pyproject: ASYNC109 ignored there).
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import load_config
from gateway.store import Network, open_store
from gateway.testing.process import GatewayProcess
from gateway.testing.support import (
    POSTGRES_URL,
    drop_schema,
    free_port,
    postgres_available,
    unique_schema,
    write_config,
)
from gateway.testing.upstream import running_upstream

REPO = Path(__file__).resolve().parents[2]

BACKEND = "gateways"  # instances that answer /readyz 200
FALLBACK = "gateways_degraded"  # the same instances, alive (/healthz): used when none is ready
BACKENDS = (BACKEND, FALLBACK)
REQUEST_TIMEOUT = 5.0  # per client request; anything slower counts as failed
DRAIN_TIMEOUT = 15.0  # HAProxy must have no request in flight on a drained server by then
STOP_TIMEOUT = 20.0  # SIGTERM -> exit (server.shutdown_timeout is 10s here)
UP_TIMEOUT = 15.0  # restarted instance -> UP in HAProxy
FEED_BOUND = 0.5  # seconds; README "The store and the change feed", tests/auth/test_cluster.py
PUBLIC_POLICY = """\
# Loopback test only: a public proxied route, then the shipped policies.
rules:
  - name: public-echo
    match: {path: "/pub/**"}
    auth: public
"""

HAPROXY_CFG = """\
# Written by bench/reliability/rolling_restart.py (docs/OPERATIONS.md has the annotated one).
global
    maxconn 2000
    nbthread 1
    stats socket ipv4@127.0.0.1:{admin_port} level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option http-keep-alive
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout queue 5s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout check 2s
    timeout tunnel 1h
    errorfile 502 {errors}/502.http
    errorfile 503 {errors}/503.http
    errorfile 504 {errors}/504.http

frontend fe_gateway
    bind 127.0.0.1:{port}
    http-request del-header X-Forwarded-For
    option forwardfor
    # No instance ready at once means the shared store (or its feed) is failing, not the
    # instances: send traffic to the live ones, which answer from memory for
    # store.max_staleness and then refuse token checks with 503 themselves.
    use_backend {fallback} if {{ nbsrv({backend}) eq 0 }}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # Replaying a POST that may have reached an instance is not safe: L7 retries for
    # idempotent methods only (a refused connection is still retried for every method).
    http-request disable-l7-retry unless {{ method GET HEAD OPTIONS }}
    default-server check inter 1s fastinter 250ms downinter 500ms fall 2 rise 2
{servers}

backend {fallback}
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    http-request disable-l7-retry unless {{ method GET HEAD OPTIONS }}
    default-server check inter 1s fastinter 250ms downinter 500ms fall 2 rise 2
{servers}

frontend stats
    bind 127.0.0.1:{stats_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
"""

# HAProxy's own answers (no instance up, ...) in the contract's error shape (API.md 1).
HAPROXY_ERRORS = {
    502: ("Bad Gateway", "upstream unavailable"),
    503: ("Service Unavailable", "no gateway instance available"),
    504: ("Gateway Timeout", "upstream timeout"),
}


def haproxy_error_file(status: int) -> str:
    """An HAProxy errorfile: a whole HTTP response with a JSON body like the gateway's."""
    reason, message = HAPROXY_ERRORS[status]
    body = json.dumps({"status": "error", "code": 500000, "message": message})
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Cache-Control: no-cache\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}")


def write_haproxy_error_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for status in HAPROXY_ERRORS:
        (folder / f"{status}.http").write_text(haproxy_error_file(status))
    return folder


# --- HAProxy -------------------------------------------------------------------------


class HAProxy:
    """`haproxy -db` in a child process, driven through its runtime API (loopback TCP)."""

    def __init__(self, folder: Path, servers: dict[str, int]) -> None:
        self.folder = folder
        self.port = free_port()
        self.admin_port = free_port()
        self.stats_port = free_port()
        self.config_path = folder / "haproxy.cfg"
        self.log_path = folder / "haproxy.log"
        lines = [f"    server {name} 127.0.0.1:{port}" for name, port in servers.items()]
        errors = write_haproxy_error_files(folder / "errors")
        self.config_path.write_text(HAPROXY_CFG.format(
            admin_port=self.admin_port, port=self.port, backend=BACKEND, fallback=FALLBACK,
            errors=errors,
            stats_port=self.stats_port, servers="\n".join(lines)))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 15.0) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed")
        check = await asyncio.create_subprocess_exec(
            binary, "-c", "-q", "-f", str(self.config_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(check.communicate(), timeout)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected {self.config_path}:\n{out.decode()}")
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                binary, "-db", "-f", str(self.config_path), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"haproxy exited early:\n{self.log()}")
            with contextlib.suppress(OSError, ValueError):
                states = [await self.states(backend) for backend in BACKENDS]
                if all(s and all(r["status"] == "UP" for r in s.values()) for s in states):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy servers not UP within {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # -db: hard stop
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def command(self, line: str, timeout: float = 5.0) -> str:
        """One runtime API command (`show stat`, `set server b/s state drain`, ...)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.admin_port), timeout)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
        return data.decode()

    async def stats(self, backend: str = BACKEND) -> dict[str, dict[str, str]]:
        """`show stat` rows of a backend, by server name (and "BACKEND" for its total)."""
        text = await self.command("show stat")
        lines = [line for line in text.splitlines() if line]
        if not lines or not lines[0].startswith("# "):
            raise ValueError(f"unexpected `show stat` answer: {text[:200]!r}")
        names = lines[0][2:].split(",")
        rows = {}
        for line in lines[1:]:
            row = dict(zip(names, line.split(","), strict=False))
            if row.get("pxname") == backend:
                rows[row["svname"]] = row
        return rows

    async def states(self, backend: str = BACKEND) -> dict[str, dict[str, str]]:
        rows = await self.stats(backend)
        return {name: row for name, row in rows.items() if name != "BACKEND"}

    async def set_state(self, server: str, state: str) -> None:
        """`set server <backend>/<server> state ready|drain|maint`, in every backend."""
        for backend in BACKENDS:
            answer = await self.command(f"set server {backend}/{server} state {state}")
            if answer.strip():
                raise RuntimeError(f"haproxy refused the state {state} for {server}: {answer}")

    async def wait_for(self, server: str, what: str, predicate: Any, timeout: float) -> float:
        """Poll `show stat` until predicate(row) holds for `server` in every backend."""
        started = time.monotonic()
        row: dict[str, str] = {}
        while time.monotonic() - started < timeout:
            rows = [(await self.states(backend))[server] for backend in BACKENDS]
            if all(predicate(row) for row in rows):
                return time.monotonic() - started
            row = next(row for row in rows if not predicate(row))
            await asyncio.sleep(0.05)
        raise RuntimeError(f"haproxy: {server} not {what} within {timeout}s "
                           f"(status {row.get('status')}, scur {row.get('scur')})")


def haproxy_binary() -> str | None:
    """The `haproxy` executable: on PATH, else where Debian puts it (/usr/sbin)."""
    found = shutil.which("haproxy")
    if found is None:
        for candidate in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
            if os.access(candidate, os.X_OK):
                return candidate
    return found


async def haproxy_missing() -> str | None:
    """None if `haproxy` can run here, else why not."""
    if haproxy_binary() is None:
        return "haproxy is not installed (Debian: apt-get install haproxy)"
    return None


# --- traffic -------------------------------------------------------------------------

# (kind, method, path, sends the access token): all answer 200 while the token is valid.
KINDS: tuple[tuple[str, str, str, bool], ...] = (
    ("public GET (proxied)", "GET", "/pub/ping", False),
    ("public POST (proxied)", "POST", "/pub/echo", False),
    ("token GET (proxied)", "GET", "/api/v3/x", True),
    ("token check (built-in)", "GET", "/api/v3/sessions", True),
)


@dataclass
class Traffic:
    """A steady stream of requests through `url`: `workers` loops, `rate` requests/s in all."""

    url: str
    token: str
    rate: float = 200.0
    workers: int = 4
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    started: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sent(self) -> int:
        return sum(self.counts.values())

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session, i) for i in range(self.workers)))

    async def _worker(self, session: aiohttp.ClientSession, number: int) -> None:
        interval = self.workers / self.rate
        due = time.monotonic() + number * interval / self.workers
        turn = number
        while not self._stop.is_set():
            kind, method, path, with_token = KINDS[turn % len(KINDS)]
            turn += 1
            headers = {"Authorization": f"Bearer {self.token}"} if with_token else {}
            body = {"n": turn} if method == "POST" else None
            at = time.monotonic() - self.started
            try:
                async with session.request(method, self.url + path, headers=headers,
                                           json=body) as response:
                    await response.read()
                    outcome = str(response.status)
                    if response.status != 200:
                        self.failures.append(f"{at:6.2f}s {kind}: HTTP {response.status} "
                                             f"{(await response.text())[:120]}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
                self.failures.append(f"{at:6.2f}s {kind}: {outcome} {exc}")
            self.counts[(kind, outcome)] += 1
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            else:
                due = time.monotonic()  # behind: do not burst to catch up


# --- the cluster ---------------------------------------------------------------------


@dataclass
class Cluster:
    folder: Path
    upstream: str
    schema: str
    instances: dict[str, GatewayProcess]
    network: Network
    haproxy: HAProxy


def instance_names(count: int) -> list[str]:
    return [chr(ord("a") + i) for i in range(count)]


def write_instance_configs(folder: Path, upstream: str, schema: str, count: int,
                           store_url: str = POSTGRES_URL,
                           drain_grace: str = "0s") -> dict[str, Path]:
    """N configs in one folder: same store and schema, same certs/ and keys, own port."""
    policy = folder / "public.yaml"
    policy.write_text(PUBLIC_POLICY)
    paths = {}
    for name in instance_names(count):
        paths[name] = write_config(folder, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                       "trusted_proxies": ["127.0.0.1/32"], "shutdown_timeout": "10s",
                       "drain_grace": drain_grace},
            "store": {"url": store_url, "schema": schema},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(policy), str(REPO / "policies" / "default.yaml")],
        }, name=f"{name}.yaml")
    return paths


async def wait_ready(url: str, timeout: float = 15.0) -> float:
    """Poll GET /readyz until 200; the seconds it took."""
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() - started < timeout:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url}/readyz not 200 within {timeout}s")


@contextlib.asynccontextmanager
async def running_cluster(folder: Path, count: int = 2, store_url: str = POSTGRES_URL,
                          drain_grace: str = "0s") -> AsyncIterator[Cluster]:
    """Upstream, N gateways on a fresh PostgreSQL schema, HAProxy; all stopped on exit.

    `store_url` may lead to the same server another way (a relay a test can cut)."""
    schema = unique_schema()
    instances: dict[str, GatewayProcess] = {}
    haproxy: HAProxy | None = None
    try:
        async with running_upstream("sg") as upstream:
            paths = write_instance_configs(folder, upstream, schema, count, store_url,
                                           drain_grace)
            first = next(iter(paths.values()))
            store = await open_store(load_config(first, environ={}))
            try:
                network = await store.create_network("rolling", "sg", secure=False)
            finally:
                await store.close()
            for name, path in paths.items():  # one at a time: the first creates certs/
                instances[name] = GatewayProcess(path)
                instances[name].log_path = folder / f"gateway-{name}-0.log"
                await instances[name].start()
                await wait_ready(instances[name].url)
            haproxy = HAProxy(folder, {n: p.port for n, p in instances.items()})
            await haproxy.start()
            yield Cluster(folder, upstream, schema, instances, network, haproxy)
    finally:
        if haproxy is not None:
            await haproxy.stop()
        for process in instances.values():
            if process.proc is not None and process.proc.returncode is None:
                with contextlib.suppress(AssertionError):
                    await process.stop(timeout=STOP_TIMEOUT)
        with contextlib.suppress(Exception):
            await drop_schema(schema)


async def login(session: aiohttp.ClientSession, url: str, network: Network, user: str,
                device: str) -> str:
    async with session.post(f"{url}/api/v3/sessions", headers={"x-api-key": network.api_key},
                            json={"userId": user, "deviceId": device}) as response:
        body: dict[str, Any] = await response.json()
        if response.status != 200:
            raise RuntimeError(f"login through {url}: {response.status} {body}")
        return str(body["accessToken"])


async def token_status(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(f"{url}/api/v3/sessions",
                           headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


async def revocation_delay(session: aiohttp.ClientSession, source: str, target: str,
                           network: Network, tag: str,
                           timeout: float = 5.0) -> tuple[float, float]:
    """A revocation through `source`: seconds from its answer until `target` refuses the
    token, and from its append to the feed until `target` applied it (target's
    gateway_feed_entry_delay_seconds: the revocation is the last entry written)."""
    token = await login(session, source, network, f"revoke-{tag}", f"device-{tag}")
    status = await token_status(session, target, token)
    if status != 200:  # the target must have verified (and cached) the token first
        raise RuntimeError(f"{target} answered {status} to a fresh token")
    async with session.delete(f"{source}/api/v4/sessions",
                              headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"revocation through {source}: {response.status}")
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await token_status(session, target, token) == 401:
            refused = time.monotonic() - started
            async with session.get(f"{target}/metrics") as response:
                exposition = await response.text()
            for line in exposition.splitlines():
                if line.startswith("gateway_feed_entry_delay_seconds "):
                    return refused, float(line.split()[1])
            raise RuntimeError(f"{target}/metrics has no gateway_feed_entry_delay_seconds")
        await asyncio.sleep(0.002)
    raise RuntimeError(f"{target} still accepts a token revoked through {source} "
                       f"after {timeout}s")


# --- the run -------------------------------------------------------------------------


@dataclass
class Report:
    procedure: str
    instances: int
    duration: float = 0.0
    requests: int = 0
    failed: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    restarts: list[dict[str, Any]] = field(default_factory=list)
    haproxy_retries: int = 0
    haproxy_redispatches: int = 0
    served: dict[str, int] = field(default_factory=dict)  # requests HAProxy sent to each
    revocation_ms: list[float] = field(default_factory=list)  # answer -> other one refuses
    feed_delay_ms: list[float] = field(default_factory=list)  # append -> other one applied
    forwarded_for: str = ""
    none_ready: tuple[int, str] = (0, "")  # the answer with no instance ready (fallback)
    no_instance: tuple[int, str] = (0, "")  # HAProxy's answer with every instance in maint
    metric_names: set[str] = field(default_factory=set)  # a gateway's /metrics, then HAProxy's

    @property
    def revocation_worst_ms(self) -> float:
        return max(self.revocation_ms) if self.revocation_ms else float("nan")

    @property
    def feed_worst_ms(self) -> float:
        return max(self.feed_delay_ms) if self.feed_delay_ms else float("nan")

    @property
    def feed_median_ms(self) -> float:
        return statistics.median(self.feed_delay_ms) if self.feed_delay_ms else float("nan")

    @property
    def revocation_median_ms(self) -> float:
        return statistics.median(self.revocation_ms) if self.revocation_ms else float("nan")

    def summary(self) -> str:
        lines = [
            f"rolling restart ({self.procedure}) of {self.instances} gateways behind HAProxy: "
            f"{self.requests} requests in {self.duration:.1f}s, {self.failed} failed; "
            f"HAProxy retried {self.haproxy_retries}, redispatched {self.haproxy_redispatches}; "
            f"requests per instance {self.served}",
        ]
        for kind, outcomes in self.by_kind.items():
            lines.append(f"  {kind:24} {outcomes}")
        for restart in self.restarts:
            lines.append("  restart {name}: drained in {drain_s:.2f}s, exit {exit_code} after "
                         "{stop_s:.2f}s, ready after {start_s:.2f}s, UP in HAProxy after "
                         "{up_s:.2f}s".format(**restart))
        lines.append(f"  revocation through one instance refused by another after median "
                     f"{self.revocation_median_ms:.0f} ms, worst {self.revocation_worst_ms:.0f} "
                     f"ms over {len(self.revocation_ms)} rounds (bound {FEED_BOUND * 1000:.0f} ms)"
                     f"; feed append -> applied there: median {self.feed_median_ms:.1f} ms, "
                     f"worst {self.feed_worst_ms:.1f} ms")
        lines.append(f"  X-Forwarded-For seen by the upstream: {self.forwarded_for!r}")
        lines.append(f"  no instance ready (fallback backend): {self.none_ready[0]}")
        lines.append(f"  HAProxy with no instance: {self.no_instance[0]} {self.no_instance[1]}")
        lines.extend(f"  FAILED {line}" for line in self.failures[:30])
        if len(self.failures) > 30:
            lines.append(f"  ... {len(self.failures) - 30} more")
        return "\n".join(lines)


@dataclass
class Outage:
    not_ready_s: float = 0.0  # store cut -> HAProxy has no instance ready
    served: dict[str, str] = field(default_factory=dict)  # kind -> answer, store still cut
    ready_again_s: float = 0.0  # store back -> every instance ready in HAProxy


async def store_outage(cluster: Cluster, session: aiohttp.ClientSession, token: str,
                       cut: Callable[[], Awaitable[None]],
                       restore: Callable[[], Awaitable[None]],
                       timeout: float = 15.0) -> Outage:
    """Cut the shared store: every instance's /readyz fails together. What do clients get
    through HAProxy (the fallback backend), and how long until all is ready again?"""
    outage, haproxy, names = Outage(), cluster.haproxy, list(cluster.instances)

    async def wait(ready: bool) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            states = await haproxy.states()
            if all((states[name]["status"] == "UP") == ready for name in names):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise RuntimeError(f"haproxy: instances not {'ready' if ready else 'down'} "
                           f"within {timeout}s")

    await cut()
    try:
        outage.not_ready_s = await wait(ready=False)
        for kind, method, path, with_token in KINDS:
            headers = {"Authorization": f"Bearer {token}"} if with_token else {}
            body = {"n": 0} if method == "POST" else None
            try:
                async with session.request(method, haproxy.url + path, headers=headers,
                                           json=body) as response:
                    await response.read()
                    outcome = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            outage.served[kind] = outcome
    finally:
        await restore()
    outage.ready_again_s = await wait(ready=True)
    return outage


def metric_names(exposition: str) -> set[str]:
    """Sample names (`x_total`, `x_bucket`, ...) and family names in a Prometheus text page."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


async def answers_without_instances(
    cluster: Cluster, session: aiohttp.ClientSession
) -> tuple[tuple[int, str], tuple[int, str]]:
    """What a client gets with no instance ready (the fallback backend serves), then with
    no instance at all (HAProxy answers itself): (status, body) of each."""
    haproxy, names, answers = cluster.haproxy, list(cluster.instances), []
    try:
        for backends in ((BACKEND,), BACKENDS):
            for backend in backends:
                for name in names:
                    await haproxy.command(f"set server {backend}/{name} state maint")
            async with session.get(f"{haproxy.url}/pub/ping") as response:
                answers.append((response.status, await response.text()))
    finally:
        for name in names:
            await haproxy.set_state(name, "ready")
    return answers[0], answers[1]


async def restart(cluster: Cluster, name: str, procedure: str) -> dict[str, Any]:
    """Restart one instance the given way; timings of each step."""
    haproxy, process = cluster.haproxy, cluster.instances[name]
    timings: dict[str, Any] = {"name": name, "drain_s": 0.0}
    if procedure == "drain":
        await haproxy.set_state(name, "drain")
        timings["drain_s"] = await haproxy.wait_for(
            name, "idle", lambda row: row["scur"] == "0" and row["qcur"] == "0",
            DRAIN_TIMEOUT)
    started = time.monotonic()
    timings["exit_code"] = await process.stop(timeout=STOP_TIMEOUT)
    timings["stop_s"] = time.monotonic() - started
    if timings["exit_code"] != 0:
        raise RuntimeError(f"{name} exited {timings['exit_code']} on SIGTERM:\n{process.log()}")
    started = time.monotonic()
    earlier = len(list(cluster.folder.glob(f"gateway-{name}-*.log")))
    process.log_path = cluster.folder / f"gateway-{name}-{earlier}.log"  # keep the old log
    await process.start()
    await wait_ready(process.url)
    timings["start_s"] = time.monotonic() - started
    if procedure == "drain":
        await haproxy.set_state(name, "ready")
    # Never take the next one down before HAProxy sends traffic to this one again.
    timings["up_s"] = await haproxy.wait_for(
        name, "UP", lambda row: row["status"] == "UP", UP_TIMEOUT)
    return timings


async def rolling_restart(folder: Path, *, instances: int = 2, procedure: str = "drain",
                          rate: float = 200.0, settle: float = 1.0, rounds: int = 1,
                          revocation_rounds: int = 6) -> Report:
    report = Report(procedure=procedure, instances=instances)
    # SIGTERM alone relies on the gateway's own drain: /readyz 503 for longer than
    # HAProxy's fall x inter (2 x 1 s) plus a check.
    grace = "3500ms" if procedure == "sigterm" else "0s"
    async with running_cluster(folder, instances, drain_grace=grace) as cluster, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        token = await login(session, cluster.haproxy.url, cluster.network, "steady", "steady")
        async with session.get(f"{cluster.haproxy.url}/pub/xff",
                               headers={"X-Forwarded-For": "203.0.113.9"}) as response:
            echoed = await response.json()
            report.forwarded_for = ", ".join(
                v for k, v in echoed["headers"] if k.lower() == "x-forwarded-for")
        before = await cluster.haproxy.stats()
        traffic = Traffic(cluster.haproxy.url, token, rate=rate)
        flowing = asyncio.create_task(traffic.run())
        try:
            await asyncio.sleep(settle)
            for _ in range(rounds):
                for name in cluster.instances:
                    report.restarts.append(await restart(cluster, name, procedure))
                    await asyncio.sleep(settle)
            urls = [p.url for p in cluster.instances.values()]
            for round_ in range(revocation_rounds):  # every ordered pair in turn, under load
                source = urls[round_ % len(urls)]
                target = urls[(round_ + 1) % len(urls)]
                refused, applied = await revocation_delay(session, source, target,
                                                          cluster.network, f"{round_}")
                report.revocation_ms.append(refused * 1000)
                report.feed_delay_ms.append(applied * 1000)
        finally:
            traffic.stop()
            await asyncio.wait_for(flowing, REQUEST_TIMEOUT + 5)
        after = await cluster.haproxy.stats()

        def grown(row: str, column: str) -> int:
            return int(after[row][column] or 0) - int(before[row][column] or 0)

        report.haproxy_retries = grown("BACKEND", "wretr")
        report.haproxy_redispatches = grown("BACKEND", "wredis")
        report.served = {name: grown(name, "stot") for name in cluster.instances}
        report.none_ready, report.no_instance = await answers_without_instances(cluster,
                                                                                session)
        for url in (next(iter(cluster.instances.values())).url,
                    f"http://127.0.0.1:{cluster.haproxy.stats_port}"):
            async with session.get(f"{url}/metrics") as response:
                report.metric_names |= metric_names(await response.text())
        report.duration = time.monotonic() - traffic.started
        report.requests = traffic.sent
        report.failed = len(traffic.failures)
        report.failures = traffic.failures
        for (kind, outcome), count in sorted(traffic.counts.items()):
            report.by_kind.setdefault(kind, {})[outcome] = count
    return report


async def main_async(options: argparse.Namespace) -> int:
    for check in (postgres_available, haproxy_missing):
        reason = await check()
        if reason is not None:
            print(f"cannot run: {reason}", file=sys.stderr)
            return 2
    folder = Path(tempfile.mkdtemp(prefix="gateway-rolling-"))
    try:
        report = await rolling_restart(folder, instances=options.instances,
                                       procedure=options.procedure, rate=options.rate,
                                       settle=options.settle, rounds=options.rounds,
                                       revocation_rounds=options.revocation_rounds)
    except Exception:
        print(f"run failed; logs kept in {folder}", file=sys.stderr)
        raise
    print(report.summary())
    if options.json:
        data = {k: v for k, v in vars(report).items()}
        data["metric_names"] = sorted(report.metric_names)
        data["revocation_worst_ms"] = report.revocation_worst_ms
        data["revocation_median_ms"] = report.revocation_median_ms
        data["feed_worst_ms"] = report.feed_worst_ms
        data["feed_median_ms"] = report.feed_median_ms
        await asyncio.to_thread(Path(options.json).write_text, json.dumps(data, indent=2) + "\n")
    ok = (report.failed == 0 and report.revocation_worst_ms < FEED_BOUND * 1000
          and report.feed_worst_ms < FEED_BOUND * 1000)
    if ok and not options.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"logs (gateway-*.log, haproxy.log) in {folder}", file=sys.stderr)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--procedure", choices=("drain", "sigterm"), default="drain")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s through HAProxy")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of traffic before, between and after restarts")
    parser.add_argument("--rounds", type=int, default=1,
                        help="how many times every instance is restarted")
    parser.add_argument("--revocation-rounds", type=int, default=10)
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    options = parser.parse_args()
    if options.instances < 2:
        parser.error("--instances must be at least 2")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    import uvloop

    return uvloop.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())

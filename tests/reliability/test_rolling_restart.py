"""Several gateways behind HAProxy on one PostgreSQL: a rolling restart fails no request.

The harness is bench/reliability/rolling_restart.py (the script operators run, with more
load and more rounds); docs/OPERATIONS.md is the recipe it checks. Loopback only.

The last two tests check what `gateway serve` does on SIGTERM for an orchestrator that
only sends SIGTERM (no load-balancer drain first): /readyz turns 503 while requests are
still answered, keep-alive included, for `server.drain_grace`. See
docs/OPERATIONS.md, "What SIGTERM does".
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
import yaml

from gateway.config import load_config
from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.support import POSTGRES_URL, REPO, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.support import POSTGRES_REQUIRED, require_postgres
from tests.test_store_outage import Relay


def _harness() -> ModuleType:
    name = "bench_reliability_rolling_restart"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO / "bench" / "reliability" / "rolling_restart.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


rolling = _harness()


async def _require_haproxy() -> None:
    """Skip with the reason when haproxy is absent, unless CI requires it (as PostgreSQL)."""
    reason = await rolling.haproxy_missing()
    if reason is None:
        return
    if POSTGRES_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_rolling_restart_behind_haproxy_fails_no_request(tmp_path: Path) -> None:
    await require_postgres()
    await _require_haproxy()
    started = time.monotonic()
    report = await rolling.rolling_restart(
        tmp_path, instances=2, procedure="drain", rate=150.0, settle=1.0, revocation_rounds=6)
    print(f"\n{report.summary()}\n  ({time.monotonic() - started:.1f}s in all)")

    assert report.failed == 0, report.summary()
    # Traffic really flowed through every restart, of every kind, to both instances.
    assert [r["exit_code"] for r in report.restarts] == [0, 0]
    for kind, outcomes in report.by_kind.items():
        assert outcomes.get("200", 0) >= 50, (kind, outcomes)
    assert all(count >= 50 for count in report.served.values()), report.served
    # The drained instance had nothing in flight when it got SIGTERM: HAProxy never had
    # to retry or redispatch a request.
    assert report.haproxy_retries == 0 and report.haproxy_redispatches == 0, report.summary()
    # A revocation through one instance is refused by the other within the feed bound.
    assert len(report.revocation_ms) == len(report.feed_delay_ms) == 6
    assert report.revocation_worst_ms < rolling.FEED_BOUND * 1000, report.summary()
    assert report.feed_worst_ms < rolling.FEED_BOUND * 1000, report.summary()
    # HAProxy drops the client's X-Forwarded-For and sends its own; the gateway believes it
    # (trusted_proxies) and appends HAProxy's address.
    assert report.forwarded_for == "127.0.0.1, 127.0.0.1"
    # No instance ready: the fallback backend (checked on /healthz) still serves; no
    # instance at all: HAProxy answers itself, in the contract's error shape.
    assert report.none_ready[0] == 200
    assert report.no_instance[0] == 503
    assert json.loads(report.no_instance[1]) == {
        "status": "error", "code": 500000, "message": "no gateway instance available"}
    # Every metric docs/OPERATIONS.md names (table and alert rules) is really exported.
    named = set(re.findall(r"\b(?:gateway|haproxy)_[a-z_]+[a-z]\b", _doc()))
    named -= {"gateway_degraded"}  # the HAProxy backend, not a metric
    assert named - report.metric_names == set()


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_a_store_outage_fails_every_readyz_and_the_fallback_keeps_serving(
    tmp_path: Path,
) -> None:
    """/readyz fails on every instance at once when the shared store is cut; HAProxy's
    fallback backend keeps the live instances serving (token checks from memory, for
    store.max_staleness) instead of answering 503 to everything."""
    await require_postgres()
    await _require_haproxy()
    target = int(POSTGRES_URL.rsplit(":", 1)[1].split("/")[0])
    relay = Relay(target)
    await relay.start()
    try:
        store_url = POSTGRES_URL.replace(f":{target}/", f":{relay.port}/")
        async with rolling.running_cluster(tmp_path, 2, store_url=store_url) as cluster, \
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            token = await rolling.login(session, cluster.haproxy.url, cluster.network,
                                        "outage", "outage")
            outage = await rolling.store_outage(cluster, session, token, relay.cut, relay.start)
    finally:
        if relay.server is not None:
            await relay.cut()
    print(f"\nstore cut: no instance ready in HAProxy after {outage.not_ready_s:.2f}s; "
          f"served meanwhile {outage.served}; all ready again {outage.ready_again_s:.2f}s "
          f"after the store came back")
    assert outage.served == {kind: "200" for kind, *_ in rolling.KINDS}


# --- the configuration blocks of docs/OPERATIONS.md -----------------------------------


def _doc() -> str:
    return (REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")


def _blocks(info: str, containing: str = "") -> list[str]:
    found = re.findall(rf"^```{info}\n(.*?)^```", _doc(), re.DOTALL | re.MULTILINE)
    return [block for block in found if containing in block]


async def _run(*command: str, timeout: float = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_the_documented_gateway_config_loads(tmp_path: Path) -> None:
    [block] = _blocks("yaml", containing="store:")
    root = tmp_path / "etc" / "gateway"
    (root / "policies").mkdir(parents=True)
    shutil.copy(REPO / "policies" / "default.yaml", root / "policies" / "default.yaml")
    path = root / "config.yaml"
    path.write_text(block.replace("/etc/gateway/", f"{root}/"))
    config = load_config(path, environ={})
    assert config.server.trusted_proxies and config.mtls.client_cert_header == "X-Client-Cert"
    assert config.server.https is None and config.store.schema == "gateway"


async def test_the_documented_haproxy_cfg_and_scripts_are_valid(tmp_path: Path) -> None:
    await _require_haproxy()
    for script in _blocks("sh"):  # the error-file generator and the rolling restart
        path = tmp_path / "script.sh"
        path.write_text(script)
        code, out = await _run("sh", "-n", str(path))
        assert code == 0, f"{out}\n{script}"
    # The CA and a server certificate as `gateway init` makes them.
    code, out, err = await run_cli("init", "--config", str(write_config(tmp_path)))
    assert code == 0, err
    certs = tmp_path / "certs"
    haproxy_dir = tmp_path / "etc" / "haproxy"
    (haproxy_dir / "errors").mkdir(parents=True)
    (haproxy_dir / "gateway.pem").write_text(
        (certs / "server.pem").read_text() + (certs / "server.key").read_text())
    [generator] = _blocks("sh", containing="/etc/haproxy/errors")
    code, out = await _run("sh", "-c", generator.replace("/etc/haproxy/", f"{haproxy_dir}/"))
    assert code == 0, out
    for status in rolling.HAPROXY_ERRORS:  # the same bytes the test's HAProxy serves
        written = (haproxy_dir / "errors" / f"{status}.http").read_bytes()
        assert written == rolling.haproxy_error_file(status).encode()
    [cfg] = _blocks("haproxy")
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg.replace("/etc/haproxy/", f"{haproxy_dir}/")
                    .replace("/etc/gateway/certs/", f"{certs}/")
                    .replace("/run/haproxy/", f"{tmp_path}/"))
    code, out = await _run(rolling.haproxy_binary(), "-c", "-f", str(path))
    assert code == 0, out
    # The test's HAProxy runs the same rules (its bind, paths and servers differ).
    for line in ("option redispatch 1", "retry-on conn-failure empty-response response-timeout",
                 "option httpchk GET /readyz", "option httpchk GET /healthz",
                 "http-request disable-l7-retry unless { method GET HEAD OPTIONS }",
                 "use_backend gateways_degraded if { nbsrv(gateways) eq 0 }",
                 "default-server check inter 1s fastinter 250ms downinter 500ms fall 2 rise 2",
                 "http-request del-header X-Forwarded-For", "option forwardfor"):
        assert line in cfg, line
        assert line in rolling.HAPROXY_CFG.format(
            admin_port=1, port=2, backend="gateways", fallback="gateways_degraded",
            errors="e", stats_port=3, servers=""), line


async def test_the_documented_alert_rules_are_valid(tmp_path: Path) -> None:
    [block] = _blocks("yaml", containing="groups:")
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    assert {"GatewayInstanceNotReady", "GatewayFeedStale", "Gateway5xxRate",
            "GatewayUpstreamErrors", "GatewayUpstreamTimeouts", "GatewayLatencyP99",
            "GatewayTokenFailureSpike", "GatewayRestarted"} <= {r["alert"] for r in rules}
    promtool = shutil.which("promtool")
    if promtool is None:
        print("\npromtool not installed: alert rules parsed as YAML only")
        return
    path = tmp_path / "rules.yaml"
    path.write_text(block)
    code, out = await _run(promtool, "check", "rules", str(path))
    assert code == 0, out


# --- what SIGTERM does: announce the drain, keep answering for server.drain_grace ------


async def _single_gateway(tmp_path: Path, upstream: str) -> GatewayProcess:
    policy = tmp_path / "public.yaml"
    policy.write_text(rolling.PUBLIC_POLICY)
    config = write_config(tmp_path, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                   "shutdown_timeout": "10s", "drain_grace": "2s"},
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
        "policies": [str(policy), str(REPO / "policies" / "default.yaml")],
    })
    return await GatewayProcess(config).start()


async def _sigterm_and_wait_for_drain(gateway: GatewayProcess) -> None:
    gateway.signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while "draining" not in gateway.log():
        assert time.monotonic() < deadline, f"no drain logged:\n{gateway.log()}"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # well inside server.drain_grace (2 s here)


async def _attempt(session: aiohttp.ClientSession, url: str) -> tuple[int | str, str]:
    """(status, body) or (the connection error's name, its text)."""
    try:
        async with session.get(url) as response:
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__, str(exc)


async def _slow(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/pub/slow?delay=2") as response:
        await response.read()
        return response.status


@pytest.mark.timeout(30)
async def test_sigterm_turns_readyz_503_while_new_requests_are_still_served(
    tmp_path: Path,
) -> None:
    async with running_upstream("sg") as upstream:
        gateway = await _single_gateway(tmp_path, upstream)
        try:
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                in_flight = asyncio.create_task(_slow(session, gateway.url))  # holds the drain
                await asyncio.sleep(0.3)
                await _sigterm_and_wait_for_drain(gateway)
                # New connections, as a health checker and a load balancer open them.
                async with aiohttp.ClientSession(timeout=timeout) as fresh:
                    readyz = await _attempt(fresh, f"{gateway.url}/readyz")
                    ping = await _attempt(fresh, f"{gateway.url}/pub/ping")
                assert await in_flight == 200  # the drain itself works (test_proxy_process)
        finally:
            code = await gateway.stop()
    assert code == 0
    assert readyz[0] == 503 and "draining" in readyz[1], f"/readyz during the drain: {readyz}"
    assert ping[0] == 200, f"a request during the drain: {ping}"


@pytest.mark.timeout(30)
async def test_a_request_on_an_idle_keep_alive_connection_after_sigterm_is_answered(
    tmp_path: Path,
) -> None:
    """What failed a POST in `rolling_restart.py --procedure sigterm`: HAProxy reused an
    idle connection to the instance at the moment SIGTERM closed it; HAProxy cannot replay
    a POST, so the client lost it. Answering it loses nothing."""
    async with running_upstream("sg") as upstream:
        gateway = await _single_gateway(tmp_path, upstream)
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                in_flight = asyncio.create_task(_slow(session, gateway.url))  # holds the drain
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await asyncio.wait_for(reader.readexactly(length), 5)
                assert head.startswith(b"HTTP/1.1 200"), head  # now idle and kept alive
                await _sigterm_and_wait_for_drain(gateway)
                body = b'{"n": 1}'
                writer.write(b"POST /pub/echo HTTP/1.1\r\nHost: gw\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                try:
                    await writer.drain()
                    status_line = await asyncio.wait_for(reader.readline(), 5)
                except (ConnectionError, OSError) as exc:
                    status_line = f"{type(exc).__name__}: {exc}".encode()
                assert await in_flight == 200
        finally:
            writer.close()
            code = await gateway.stop()
    assert code == 0
    assert status_line.startswith(b"HTTP/1.1 200"), (
        f"the request got {status_line!r} (empty: the connection was closed unanswered)")

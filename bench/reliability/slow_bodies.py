"""Slow request bodies: many connections trickle their bodies into one real gateway.

    .venv/bin/python bench/reliability/slow_bodies.py --connections 1000
    .venv/bin/python bench/reliability/slow_bodies.py --connections 200 --json out.json

One `gateway serve` process (uvloop, 1 worker, SQLite) in front of a loopback upstream
that records every upload it gets, all on 127.0.0.1; bounded by
`--body-timeout` + `--slack` per connection, the whole run by `--limit`.

Each connection sends a whole request head and the start of a body, then one byte every
`--trickle-every` seconds (far below the gateway's progress floor), and reads until the
gateway closes. Half are logins (`POST /api/v3/sessions`, a built-in endpoint, JSON
padded with spaces), half proxied chunked uploads (`POST /pub/upload`, one-byte chunks).

Checked:
- every connection was cut no earlier than `server.body_timeout` and no later than it
  plus the slack, with the contract's 408 JSON (or, where allowed, a bare close);
- the upstream saw every proxied upload aborted, none complete;
- `/healthz` answered throughout (probed every 0.2 s);
- the gateway's open file descriptors (`/proc/<pid>/fd`) are back to their level before
  the run once the connections are gone.

Output: a table and a JSON summary (`--json`); exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rel_common import (
    CHILDREN,
    LOOPBACK,
    POLICIES,
    GatewayProcess,
    free_port,
    install_stop_signals,
    run_cli,
    run_script,
    running_upstream,
    table,
    write_config,
)

from gateway.config import parse_duration

TIMEOUT_JSON = {"status": "error", "code": 400000, "message": "request timeout"}
UPLOAD_POLICY = 'rules:\n  - {name: uploads, match: {path: "/pub/**"}, auth: public}\n'
FD_TOLERANCE = 2  # a pooled upstream connection may come or go meanwhile


@dataclass
class Options:
    connections: int = 1000
    body_timeout: float = 2.0
    trickle_every: float = 0.25
    open_rate: float = 500.0  # connections opened per second: the listen backlog is finite
    slack: float = 1.0
    limit: float = 300.0
    folder: Path | None = None


@dataclass
class Cut:
    """How one trickling connection ended."""

    kind: str  # "login" or "upload"
    after: float | None  # seconds from sending the head to the close; None: never cut
    status: int | None  # 408, another status, or None for a close without an answer
    json_ok: bool


@dataclass
class Uploads:
    """What the loopback upstream received."""

    complete: int = 0
    aborted: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set at each upload's end


@dataclass
class Probe:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0


def _upstream_app(uploads: Uploads) -> web.Application:
    async def upload(request: web.Request) -> web.Response:
        try:
            await request.read()
        except Exception:  # the gateway aborted the upload: what must happen here
            uploads.aborted += 1
            uploads.ended.set()
            return web.Response(status=499)
        uploads.complete += 1
        uploads.ended.set()
        return web.Response(text="stored")

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", upload)
    return app


def _raise_fd_limit(needed: int) -> None:
    """Room for every client socket here and in the gateway (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _login_request(api_key: str) -> tuple[bytes, bytes]:
    head = (b"POST /api/v3/sessions HTTP/1.1\r\nHost: api.amity.co\r\nx-api-key: "
            + api_key.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"userId": "slow", "deviceId": "d"')
    return head, b" "  # JSON whitespace, one byte at a time


def _upload_request() -> tuple[bytes, bytes]:
    head = (b"POST /pub/upload HTTP/1.1\r\nHost: api.amity.co\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"10\r\n" + b"u" * 16 + b"\r\n")
    return head, b"1\r\nu\r\n"


async def _read_to_close(reader: asyncio.StreamReader) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


def _judge(kind: str, after: float | None, raw: bytes) -> Cut:
    if not raw:
        return Cut(kind, after, None, True)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return Cut(kind, after, -1, False)
    try:
        json_ok = json.loads(body) == TIMEOUT_JSON
    except ValueError:
        json_ok = False
    return Cut(kind, after, status, json_ok)


async def trickle(port: int, kind: str, head: bytes, unit: bytes, every: float,
                  limit: float) -> Cut:
    """One connection: the head, then `unit` every `every` s until the gateway closes."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await asyncio.sleep(every)
                writer.write(unit)
                await writer.drain()

    writer.write(head)
    started = time.monotonic()
    sender = asyncio.create_task(send())
    try:
        raw = await asyncio.wait_for(_read_to_close(reader), limit)
        return _judge(kind, time.monotonic() - started, raw)
    except TimeoutError:
        return Cut(kind, None, None, False)
    finally:
        sender.cancel()
        writer.close()


async def _probe_health(url: str, probe: Probe, stop: asyncio.Event) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(f"{url}/healthz") as response:
                    await response.read()
                    if response.status != 200:
                        probe.failures += 1
            except (aiohttp.ClientError, TimeoutError):
                probe.failures += 1
            probe.latencies.append(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


async def _sample_fds(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            peak[0] = max(peak[0], open_fds(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def _settled_fds(pid: int, level: int, within: float = 10.0) -> int:
    """The gateway's open files once back at `level` (or whatever they are after `within`)."""
    deadline = time.monotonic() + within
    count = open_fds(pid)
    while count > level + FD_TOLERANCE and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        count = open_fds(pid)
    return count


async def _settled_uploads(uploads: Uploads, expected: int, within: float = 5.0) -> None:
    """Wait for the upstream to have seen the end of every proxied upload."""
    deadline = time.monotonic() + within
    while uploads.aborted + uploads.complete < expected:
        uploads.ended.clear()
        try:
            await asyncio.wait_for(uploads.ended.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return


async def _warm_up(url: str, api_key: str) -> None:
    """One whole login and one whole upload, so pools and caches exist before the baseline."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/api/v3/sessions", headers={"x-api-key": api_key},
                                json={"userId": "warm", "deviceId": "w"}) as response:
            assert response.status == 200, await response.text()
        async with session.post(f"{url}/pub/upload", data=b"warm",
                                headers={"Host": "api.amity.co"}) as response:
            assert response.status == 200, await response.text()


async def _storm(gateway: GatewayProcess, api_key: str, options: Options) -> list[Cut]:
    limit = options.body_timeout + options.slack + 10
    tasks = []
    for index in range(options.connections):
        kind = "login" if index % 2 == 0 else "upload"
        head, unit = _login_request(api_key) if kind == "login" else _upload_request()
        tasks.append(asyncio.create_task(
            trickle(gateway.port, kind, head, unit, options.trickle_every, limit)))
        await asyncio.sleep(1 / options.open_rate)
    return list(await asyncio.gather(*tasks))


def _summarise(cuts: list[Cut], options: Options) -> dict[str, Any]:
    bound = options.body_timeout + options.slack
    times = sorted(cut.after for cut in cuts if cut.after is not None)
    outcomes = Counter(
        "never cut" if cut.after is None
        else "408 JSON" if cut.status == 408 and cut.json_ok
        else "closed, no answer" if cut.status is None
        else f"other: {cut.status}"
        for cut in cuts
    )
    late = sum(1 for cut in cuts if cut.after is None or cut.after > bound)
    early = sum(1 for cut in cuts if cut.after is not None
                and cut.after < options.body_timeout * 0.95)
    return {
        "connections": len(cuts),
        "body_timeout_s": options.body_timeout,
        "bound_s": bound,
        "outcomes": dict(outcomes),
        "by_kind": dict(Counter(f"{cut.kind}: {cut.status}" for cut in cuts)),
        "cut_after_s": {
            "min": round(times[0], 3) if times else None,
            "median": round(statistics.median(times), 3) if times else None,
            "max": round(times[-1], 3) if times else None,
        },
        "late": late,
        "early": early,
    }


async def run(options: Options) -> dict[str, Any]:
    """Set up, trickle, summarise; every process and the folder are gone afterwards."""
    _raise_fd_limit(2 * options.connections + 1024)
    folder = options.folder or Path(tempfile.mkdtemp(prefix="gateway-slow-bodies-"))
    uploads = Uploads()
    gateway: GatewayProcess | None = None
    try:
        async with running_upstream(_upstream_app(uploads)) as upstream:
            policy = folder / "uploads.yaml"
            policy.write_text(UPLOAD_POLICY)
            config = write_config(folder, {
                "server": {"http": {"host": LOOPBACK, "port": free_port()},
                           "body_timeout": f"{int(options.body_timeout * 1000)}ms"},
                "regions": {"default": "sg",
                            **{name: {"hosts": [f"api.{name}.example"], "upstreams": [upstream]}
                               for name in ("eu", "sg", "us")}},
                "policies": [str(POLICIES), str(policy)],
            })
            network = await run_cli(config, "network", "create", "--name", "slow")
            gateway = GatewayProcess(config, "gateway")
            await gateway.start()
            await _warm_up(gateway.url, network["apiKey"])
            uploads.complete = 0
            baseline = open_fds(gateway.pid)
            stop, peak, probe = asyncio.Event(), [baseline], Probe()
            watchers = [asyncio.create_task(_probe_health(gateway.url, probe, stop)),
                        asyncio.create_task(_sample_fds(gateway.pid, peak, stop))]
            started = time.monotonic()
            cuts = await asyncio.wait_for(_storm(gateway, network["apiKey"], options),
                                          options.limit)
            elapsed = time.monotonic() - started
            stop.set()
            await asyncio.gather(*watchers)
            await _settled_uploads(uploads, sum(1 for cut in cuts if cut.kind == "upload"))
            after = await _settled_fds(gateway.pid, baseline)
            summary = _summarise(cuts, options)
            summary.update({
                "run_s": round(elapsed, 2),
                "upstream": {"aborted": uploads.aborted, "complete": uploads.complete},
                "fds": {"before": baseline, "peak": peak[0], "after": after},
                "healthz": {
                    "probes": len(probe.latencies), "failures": probe.failures,
                    "max_ms": round(max(probe.latencies) * 1000, 1) if probe.latencies else None,
                },
            })
            summary["gateway_exit_code"] = await gateway.stop()
            return summary
    finally:
        if gateway is not None and gateway.alive:
            with contextlib.suppress(Exception):
                await gateway.stop()
        await CHILDREN.kill_all()
        if options.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def failed(summary: dict[str, Any]) -> list[str]:
    """What did not hold (empty: everything did)."""
    problems = []
    if summary["late"] or summary["early"]:
        problems.append(f"{summary['late']} cut late or never, {summary['early']} too early")
    wrong = {k: v for k, v in summary["outcomes"].items() if k not in ("408 JSON",)}
    if wrong:
        problems.append(f"not answered 408 JSON: {wrong}")
    if summary["upstream"]["complete"]:
        problems.append(f"{summary['upstream']['complete']} uploads passed off as complete")
    fds = summary["fds"]
    if fds["after"] > fds["before"] + FD_TOLERANCE:
        problems.append(f"open files {fds['before']} -> {fds['after']}")
    if summary["healthz"]["failures"]:
        problems.append(f"{summary['healthz']['failures']} /healthz probes failed")
    if summary["gateway_exit_code"] != 0:
        problems.append(f"gateway exited {summary['gateway_exit_code']}")
    return problems


def render(summary: dict[str, Any]) -> str:
    cut = summary["cut_after_s"]
    fds = summary["fds"]
    rows = [
        ["connections", summary["connections"]],
        ["body_timeout (s)", summary["body_timeout_s"]],
        ["cut after (s): min / median / max",
         f"{cut['min']} / {cut['median']} / {cut['max']}"],
        ["late (> bound) or never / early", f"{summary['late']} / {summary['early']}"],
        ["outcomes", ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items())],
        ["upstream uploads aborted / complete",
         f"{summary['upstream']['aborted']} / {summary['upstream']['complete']}"],
        ["open fds before / peak / after", f"{fds['before']} / {fds['peak']} / {fds['after']}"],
        ["/healthz probes, failures, max ms",
         f"{summary['healthz']['probes']}, {summary['healthz']['failures']}, "
         f"{summary['healthz']['max_ms']}"],
        ["gateway exit", summary["gateway_exit_code"]],
    ]
    return table(["what", "value"], rows)


def parse(argv: Iterable[str] | None = None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--body-timeout", default="2s", help="server.body_timeout (2s)")
    parser.add_argument("--trickle-every", type=float, default=0.25,
                        help="seconds between the bytes each connection trickles")
    parser.add_argument("--open-rate", type=float, default=500.0,
                        help="connections opened per second")
    parser.add_argument("--slack", type=float, default=1.0,
                        help="seconds past body_timeout a cut may take")
    parser.add_argument("--json", type=Path, default=None, help="write the JSON summary here")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep it (gateway log, SQLite file)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    timeout = parse_duration(args.body_timeout)
    if args.connections < 1 or timeout <= 0 or args.trickle_every <= 0:
        parser.error("--connections, --body-timeout and --trickle-every must be positive")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    return Options(connections=args.connections, body_timeout=timeout,
                   trickle_every=args.trickle_every, open_rate=args.open_rate,
                   slack=args.slack, folder=args.keep), args.json


async def _main(options: Options, json_path: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    install_stop_signals(task)
    summary = await run(options)
    print(render(summary))
    problems = failed(summary)
    summary["problems"] = problems
    print(json.dumps(summary))
    if json_path is not None:
        await asyncio.to_thread(json_path.write_text, json.dumps(summary, indent=2))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    options, json_path = parse()
    return run_script(lambda: _main(options, json_path))


if __name__ == "__main__":
    sys.exit(main())

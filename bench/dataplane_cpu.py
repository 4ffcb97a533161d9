"""The data plane's own CPU per proxied request, without sockets.

A real application (config, store, token service, route table) serves requests through
its data plane, but the client and upstream connections are in-memory transports: the
figure is the Python work per request (parse, route, auth, filter, heads, log, metrics),
without the system calls, the event loop or the load generator, which wrk runs share
with it. Repeatable to a few per cent on a busy machine, so it shows what a change
to the request path costs.

    python bench/dataplane_cpu.py [--requests N] [--profile] [--access-log on|off]

With --profile, SORT (a pstats key, default tottime) and ROWS (default 40) shape the table.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from gateway.app import build_app
from gateway.bootstrap import init_files
from gateway.config import load_config
from gateway.dataplane.connection import DataPlaneConnection
from gateway.dataplane.plane import DataPlane
from gateway.keys import ACCESS_LOG, TOKENS, UPSTREAMS
from gateway.proxy.upstream_client import UpstreamConnection
from gateway.server import make_runner

UPSTREAM = ("http", "127.0.0.1", 9)  # never connected: its connection is in memory
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 05:00:00 GMT\r\n"
            b"Content-Type: application/json\r\nContent-Length: 98\r\n"
            b"Connection: keep-alive\r\n\r\n" + b"x" * 98)


class Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class MemoryTransport:
    """What the connections call on a transport; writes are kept, not sent."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        raise AssertionError("handed off: the request is not the data plane's")


def write_config(folder: Path, access_log: bool) -> Path:
    (folder / "policies").mkdir()
    (folder / "policies" / "bench.yaml").write_text(
        "rules:\n"
        "  - {name: token, match: {path: '/api/v3/tok/**'}, auth: any_token}\n"
        "  - {name: public, match: {path: '/**'}, auth: public}\n")
    config = folder / "config.yaml"
    config.write_text(
        "server:\n  http: {host: 127.0.0.1, port: 9}\n  https: null\n"
        f"  access_log: {str(access_log).lower()}\n"
        "store:\n  url: sqlite:///var/gateway.db\n"
        "regions:\n  default: local\n"
        "  local: {hosts: [localhost], upstreams: ['http://127.0.0.1:9']}\n"
        "policies: [policies/bench.yaml]\n")
    return config


async def measure(requests: int, profile: bool, access_log: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(write_config(Path(folder), access_log), environ={})
        await asyncio.to_thread(init_files, config)  # dev certificates, the store's folder
        app = build_app(config)
        app[ACCESS_LOG].stream = Discard()  # lines are made, then dropped
        runner = make_runner(app, config)
        await runner.setup()
        try:
            assert runner.server is not None
            plane = DataPlane(app, runner.server)
            token, _ = await app[TOKENS].issue(kind="access", network_id="n1",
                                               subject="user-1", ttl=3600)
            rows = [("public", b"GET /api/v3/bench HTTP/1.1\r\nHost: localhost\r\n"
                               b"User-Agent: wrk\r\n\r\n"),
                    ("token", b"GET /api/v3/tok/x HTTP/1.1\r\nHost: localhost\r\n"
                              b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")]
            for name, request in rows:
                seconds = serve(plane, app, request, requests, profile)
                print(f"{name:8s} {seconds / requests * 1e6:7.2f} µs per request "
                      f"(access log {'on' if access_log else 'off'})")
        finally:
            app[UPSTREAMS].close()
            await runner.cleanup()


def serve(plane: DataPlane, app: web.Application, request: bytes, requests: int,
          profile: bool) -> float:
    client = plane.protocol()
    client_transport = MemoryTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    pool = app[UPSTREAMS]
    upstream = UpstreamConnection(pool, UPSTREAM)
    upstream_transport = MemoryTransport()
    upstream.connection_made(upstream_transport)  # type: ignore[arg-type]
    pool.put_back(upstream)
    one_round(client, upstream, request)  # warm: route cache, token cache
    assert client_transport.written[-1].startswith(b"HTTP/1.1 200"), client_transport.written
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(requests):
        one_round(client, upstream, request)
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime"))
        stats.print_stats(int(os.environ.get("ROWS", "40")))
    elapsed = time.process_time() - started
    assert len(client_transport.written) == requests + 1
    client_transport.written.clear()
    upstream_transport.written.clear()
    client.connection_lost(None)
    return elapsed


def one_round(client: DataPlaneConnection, upstream: UpstreamConnection,
              request: bytes) -> None:
    client.data_received(request)
    upstream.data_received(RESPONSE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    args = parser.parse_args()
    uvloop.run(measure(args.requests, args.profile, args.access_log == "on"))


if __name__ == "__main__":
    main()

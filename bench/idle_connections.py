"""Idle keep-alive connections held by one gateway process (data plane), and what they
cost in resident memory: open N connections from loopback, send one request on each so
they are real kept-alive connections, then hold them idle and read the gateway's RSS.

    .venv/bin/python bench/idle_connections.py --connections 10000

Loopback only; bounded (it stops by itself). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from gateway.testing.process import GatewayProcess
from gateway.testing.support import free_port, write_config
from gateway.testing.upstream import running_upstream

POLICY = """rules:
  - {name: healthz, match: {path: /healthz, methods: [GET]}, auth: public}
  - {name: public, match: {path: "/**"}, auth: public}
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []
    request = b"GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n"
    for start in range(0, count, 500):
        batch = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port)
                                       for _ in range(min(500, count - start))))
        for _reader, writer in batch:
            writer.write(request)
        for reader, writer in batch:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writers.append(writer)
    return writers


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them idle")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.connections + 100 > hard:
        print(f"need {args.connections + 100} open files, the limit is {hard}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        async with running_upstream("idle") as upstream:
            policy = Path(folder) / "idle.yaml"
            policy.write_text(POLICY)
            port = free_port()
            config = write_config(Path(folder), {
                "server": {"https": None, "http": {"host": "127.0.0.1", "port": port},
                           "access_log": False, "keepalive_timeout": "10m",
                           "max_connections_per_address": args.connections + 10},
                "regions": {"default": "local", "local": {"hosts": [],
                                                          "upstreams": [upstream]}},
                "policies": [str(policy)],
            })
            async with GatewayProcess(config) as gateway:
                assert gateway.proc is not None
                pid = gateway.proc.pid
                await asyncio.sleep(1)
                before = rss_kib(pid)
                started = time.monotonic()
                writers = await hold(port, args.connections)
                opened = time.monotonic() - started
                await asyncio.sleep(args.hold)
                after = rss_kib(pid)
                for writer in writers:
                    writer.close()
    print(json.dumps({
        "connections": args.connections, "opened_in_s": round(opened, 1),
        "rss_before_mib": round(before / 1024, 1), "rss_held_mib": round(after / 1024, 1),
        "growth_mib": round((after - before) / 1024, 1),
        "per_connection_kib": round((after - before) / args.connections, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

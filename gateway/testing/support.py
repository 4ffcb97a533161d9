"""Helpers shared by the tests and the benchmarks: config files, free ports, the PostgreSQL
test database, a settable clock, raw HTTP requests."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import asyncpg
import yaml

REPO = Path(__file__).resolve().parents[2]  # a source checkout: policies/, bench/, tests/
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_schema() -> str:
    return f"test_{secrets.token_hex(6)}"


async def postgres_available() -> str | None:
    """None if the test database answers, else why not."""
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}"
    await conn.close()
    return None


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def write_config(
    folder: Path, overrides: dict[str, Any] | None = None, name: str = "config.yaml"
) -> Path:
    """A config.yaml in `folder` with free ports, a SQLite store there and the repo's policies."""
    config: dict[str, Any] = {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "https": {"host": "127.0.0.1", "port": free_port(),
                      "cert": "certs/server.pem", "key": "certs/server.key"},
            "shutdown_timeout": "10s",
            "drain_grace": "0s",  # tests that drain set their own
        },
        "store": {"url": "sqlite:///var/gateway.db"},
        "regions": {
            "default": "sg",
            "eu": {"hosts": ["api.eu.amity.co"], "upstreams": ["http://127.0.0.1:9"]},
            "sg": {"hosts": ["api.sg.amity.co", "api.amity.co"],
                   "upstreams": ["http://127.0.0.1:9"]},
            "us": {"hosts": ["api.us.amity.co"], "upstreams": ["http://127.0.0.1:9"]},
        },
        "policies": [str(REPO / "policies" / "default.yaml")],
    }
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(config.get(section), dict):
            config[section].update(values)
        else:
            config[section] = values
    path = folder / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def raw_request(port: int, head: bytes, body: bytes = b"", host: str = "127.0.0.1",
                      timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send bytes exactly as given (no client-side normalisation); return status, headers, body."""
    import asyncio

    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head_part, _, payload = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, payload


class Clock:
    """A settable clock for the gateway under test (expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

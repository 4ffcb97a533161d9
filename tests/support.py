"""Helpers shared by the tests: config files, free ports, the PostgreSQL test database."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_REQUIRED = os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1"


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


async def require_postgres() -> None:
    """Skip with the reason when PostgreSQL is absent, unless CI requires it."""
    reason = await postgres_available()
    if reason is None:
        return
    if POSTGRES_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def write_config(folder: Path, overrides: dict[str, Any] | None = None) -> Path:
    """A config.yaml in `folder` with free ports, a SQLite store there and the repo's policies."""
    config: dict[str, Any] = {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "https": {"host": "127.0.0.1", "port": free_port(),
                      "cert": "certs/server.pem", "key": "certs/server.key"},
            "shutdown_timeout": "10s",
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
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path

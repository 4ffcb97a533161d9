from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.build import build_kind
from gateway.config import load_config
from gateway.store import Store, open_store
from gateway.testing.support import Clock, drop_schema, unique_schema, write_config
from tests.support import require_postgres


def pytest_sessionstart(session: pytest.Session) -> None:
    """With GATEWAY_EXPECT_BUILD (compiled or interpreted, as CI sets it), refuse to test
    any other build: a missing extension would otherwise quietly test the sources."""
    expected = os.environ.get("GATEWAY_EXPECT_BUILD")
    if expected and build_kind() != expected:
        raise pytest.UsageError(f"GATEWAY_EXPECT_BUILD={expected}, but this is the "
                                f"{build_kind()} build (gateway/build.py)")


@pytest.fixture
def clock() -> Clock:
    """The gateway's clock in tests that move time instead of sleeping."""
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store_config(backend: str, tmp_path: Path) -> AsyncIterator[Path]:
    """A config file whose store is a fresh SQLite file or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield write_config(tmp_path)
        return
    await require_postgres()
    from gateway.testing.support import POSTGRES_URL

    schema = unique_schema()
    yield write_config(tmp_path, {"store": {"url": POSTGRES_URL, "schema": schema}})
    await drop_schema(schema)


@pytest.fixture
async def store(store_config: Path) -> AsyncIterator[Store]:
    opened = await open_store(load_config(store_config, environ={}))
    yield opened
    await opened.close()

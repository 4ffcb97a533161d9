from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.store import Store, open_store
from gateway.testing.support import Clock, drop_schema, unique_schema, write_config
from tests.support import require_postgres


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

"""What only pytest runs need: PostgreSQL skipped with its reason, or required in CI.
Everything else the tests share with the benchmarks is in gateway.testing."""

from __future__ import annotations

import os

import pytest

from gateway.testing.support import postgres_available

POSTGRES_REQUIRED = os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1"


async def require_postgres() -> None:
    """Skip with the reason when PostgreSQL is absent, unless CI requires it."""
    reason = await postgres_available()
    if reason is None:
        return
    if POSTGRES_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)

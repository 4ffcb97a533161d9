"""SIGKILL durability (bench/reliability/kill_test.py, fewer and shorter cycles): every
acknowledged change survives a gateway killed mid-traffic, nothing is half-written."""

from __future__ import annotations

from pathlib import Path

import kill_test
import pytest

from gateway.testing.support import POSTGRES_URL, drop_schema, unique_schema
from tests.support import require_postgres

CYCLES = 5
KILL_AFTER = (0.3, 1.0)


def _options(tmp_path: Path, store: str, pg_schema: str | None = None) -> kill_test.Options:
    return kill_test.Options(store=store, cycles=CYCLES, kill_after=KILL_AFTER,
                             folder=tmp_path, pg_url=POSTGRES_URL, pg_schema=pg_schema,
                             csr_pool=4, quiet=True)


def _assert_clean(report: kill_test.Report) -> None:
    print("\n" + report.render())
    totals = report.totals()
    assert totals["acked"] > CYCLES * 20, "the clients made too few changes to mean anything"
    assert totals["inflight"] > 0, "no change was in flight at a kill"
    assert totals["lost"] == 0, report.render()
    assert totals["half_written"] == 0, report.render()
    assert totals["audit_missing"] == 0, report.render()
    assert totals["unaudited"] == 0, report.render()  # entries commit with their change
    assert totals["refused"] == 0, report.render()


async def test_sigkill_sqlite(tmp_path: Path) -> None:
    _assert_clean(await kill_test.run(_options(tmp_path, "sqlite")))


@pytest.mark.postgres
async def test_sigkill_postgres(tmp_path: Path) -> None:
    await require_postgres()
    schema = unique_schema()
    try:
        _assert_clean(await kill_test.run(_options(tmp_path, "postgres", pg_schema=schema)))
    finally:
        await drop_schema(schema)


async def test_the_checks_see_a_loss(tmp_path: Path) -> None:
    """The checks are not vacuous: an acknowledged certificate and ban undone in the store
    behind the gateways' backs are reported as lost and half-written."""
    options = _options(tmp_path, "sqlite")
    options.sabotage = True
    options.cycles = 1
    options.kill_after = (0.3, 0.5)
    options.observer = False  # the store checks and the listing see it without one
    options.final_sweep = False
    report = await kill_test.run(options)
    totals = report.totals()
    assert totals["lost"] >= 1 and totals["half_written"] >= 1, report.render()
    assert report.failed

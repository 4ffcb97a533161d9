"""Slow-body smoke test (bench/reliability/slow_bodies.py with 100 connections): bodies
trickled into a real gateway process are all cut at `server.body_timeout` with the
contract's 408, proxied uploads are aborted at the upstream, the gateway's open files
come back to their level and /healthz answers throughout."""

from __future__ import annotations

from pathlib import Path

import slow_bodies


async def test_slow_bodies_smoke(tmp_path: Path) -> None:
    options = slow_bodies.Options(connections=100, body_timeout=1.0, trickle_every=0.2,
                                  folder=tmp_path)
    summary = await slow_bodies.run(options)
    print("\n" + slow_bodies.render(summary))
    assert slow_bodies.failed(summary) == []
    assert summary["outcomes"] == {"408 JSON": 100}
    assert summary["upstream"] == {"aborted": 50, "complete": 0}
    assert summary["cut_after_s"]["max"] <= 1.0 + options.slack

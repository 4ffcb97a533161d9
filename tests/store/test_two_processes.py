"""Two processes on one store each see the other's feed entries, in order, within a bound."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TypedDict

from gateway.testing.support import REPO

COUNT = 50
# The bound written in README.md ("Change feed"): the worst delay seen, with margin.
BOUND_SECONDS = {"sqlite": 0.5, "postgres": 0.5}


class Seen(TypedDict):
    """One feed entry as tests/store/feed_peer.py prints it."""

    seq: int
    writer: str
    i: int
    delay: float


async def _run_peers(config: Path, peers: int) -> list[list[Seen]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.store.feed_peer", str(config), f"p{n}", str(COUNT),
            str(peers), cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for n in range(peers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))["ready"]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results: list[list[Seen]] = []
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        results.append(json.loads(out.decode().strip().splitlines()[-1])["seen"])
    return results


async def test_each_process_sees_the_others_entries_in_order(
    store_config: Path, backend: str
) -> None:
    results = await _run_peers(store_config, peers=2)
    worst = 0.0
    for seen in results:
        seqs = [entry["seq"] for entry in seen]
        assert seqs == sorted(seqs), "entries applied out of sequence order"
        for writer in ("p0", "p1"):
            mine = [entry["i"] for entry in seen if entry["writer"] == writer]
            assert mine == list(range(COUNT)), f"{writer}'s entries missing or reordered"
        worst = max(worst, *(entry["delay"] for entry in seen))
    print(f"\n{backend}: worst feed delay between processes {worst * 1000:.1f} ms")
    assert worst < BOUND_SECONDS[backend]

"""Timing helpers for the micro-benchmarks in bench/: best-of-rounds CPU time per call,
and a module as it was at an earlier commit (to time the code a change replaced)."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

from gateway.testing.support import REPO


def best_per_call(rows: dict[str, Callable[[], object]], rounds: int, per_round: int
                  ) -> dict[str, float]:
    """Seconds of CPU per call of each row: rounds interleaved, the best round kept (on a
    busy machine the quietest round is the truest)."""
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(rounds):
        for name, work in rows.items():
            start = time.thread_time()
            for _ in range(per_round):
                work()
            best[name] = min(best[name], time.thread_time() - start)
    return {name: seconds / per_round for name, seconds in best.items()}


def module_at(rev: str, path: str) -> types.ModuleType:
    """The module at `path` (relative to the repository) as it was at commit `rev`."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"before_{Path(path).stem}")
    sys.modules[module.__name__] = module
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module

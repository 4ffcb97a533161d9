"""What the metrics cost a proxied request: observe_request and observe_upstream, timed.

Run: .venv/bin/python bench/metrics_observe.py [--before REV]   (about 10 s)

Per call, on a label set already seen (the steady state): `Metrics.observe_request`
(a counter and the route's histogram) and `Metrics.observe_upstream` (a counter and the
upstream's histogram); with `--before REV`, the same two calls of `gateway/metrics.py`
as it was at commit REV (read with `git show`).

Then what reading the counts costs, for a gateway with 40 routes, three statuses each
and 6 upstreams: `render()` of one process (also as at REV), and with several workers
the periodic `flush()` (this worker's totals written to its files) once every route's
row has changed, and `render()` (a flush, then every worker's files merged; here one).

Rows are run in turn, round after round (a busy machine slows them alike), each timed
in this thread's CPU time and keeping its best round.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.metrics import Metrics
from gateway.testing.timing import best_per_call, module_at

ROUNDS, PER_ROUND = 60, 10_000
ROUTES = [f"route-{i}" for i in range(40)]
UPSTREAMS = [("sg", f"http://10.0.0.{i}:8080") for i in range(6)]


def _calls(metrics: Any) -> dict[str, Callable[[], object]]:
    observe_request = metrics.observe_request
    observe_upstream = metrics.observe_upstream
    observe_request("api", "GET", 200, 0.003)
    observe_upstream("sg", "http://10.0.0.1:8080", "ok", 0.002)
    return {
        "observe_request": lambda: observe_request("api", "GET", 200, 0.003),
        "observe_upstream": lambda: observe_upstream("sg", "http://10.0.0.1:8080", "ok", 0.002),
    }


def _traffic(metrics: Metrics, requests: int, rng: random.Random) -> None:
    for _ in range(requests):
        seconds = rng.expovariate(200)
        metrics.observe_request(rng.choice(ROUTES), "GET", rng.choice((200, 404, 502)), seconds)
        region, upstream = rng.choice(UPSTREAMS)
        metrics.observe_upstream(region, upstream, "ok", seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also time the code at commit REV")
    args = parser.parse_args()
    rows: dict[str, Callable[[], object]] = {}
    if args.before:
        old = module_at(args.before, "gateway/metrics.py")
        rows.update({f"{name}, before ({args.before})": call
                     for name, call in _calls(old.Metrics()).items()})
    rows.update({f"{name}, now": call for name, call in _calls(Metrics()).items()})
    rows["(an empty call, for scale)"] = lambda: None
    timings = {name: seconds * 1e9 for name, seconds in
               best_per_call(rows, ROUNDS, PER_ROUND).items()}
    width = max(map(len, timings))
    print(f"{'per call':<{width}}  {'ns':>6}")
    for name, nanos in timings.items():
        print(f"{name:<{width}}  {nanos:>6.0f}")

    rng = random.Random(1)
    alone = Metrics()
    _traffic(alone, 20_000, rng)
    reads: dict[str, Callable[[], object]] = {}
    if args.before:
        old_alone = old.Metrics()
        _traffic(old_alone, 20_000, rng)
        reads[f"render(), one process, before ({args.before})"] = old_alone.render
    with tempfile.TemporaryDirectory() as shared_dir:
        shared = Metrics(Path(shared_dir))
        _traffic(shared, 20_000, rng)
        shared.flush()

        def second_then_flush() -> None:
            for route in ROUTES:  # every route's row changed since the last write
                shared.observe_request(route, "GET", 200, 0.004)
            shared.flush()

        reads.update({
            "render(), one process": alone.render,
            "flush(), several workers (every row changed)": second_then_flush,
            "render(), several workers": shared.render,
        })
        read_timings = {name: seconds * 1e9 for name, seconds in
                        best_per_call(reads, 10, 20).items()}
        shared.close()
    width = max(map(len, read_timings))
    print(f"\n{'reading the counts':<{width}}  {'µs':>6}")
    for name, nanos in read_timings.items():
        print(f"{name:<{width}}  {nanos / 1000:>6.0f}")


if __name__ == "__main__":
    main()

"""Prometheus metrics: plain numbers on the request path, exported when collected.

`observe_request` and `observe_upstream` run for every proxied request, so they only add
to numbers this object holds: a count per label set and, per route (or upstream), a
histogram row (one count per bucket, found with `bisect`, then the sum). No lock, no
prometheus_client object: everything runs on the event loop's thread. The numbers are
read when the registry is collected (`render`).

One process (`Metrics()`; also every application the tests build side by side): one
registry per application, read straight from those numbers, with prometheus_client's
process collector.

Several workers (`Metrics(shared_dir=...)`, made by `gateway serve --workers N`): each
worker writes its totals into files of its own in a directory the supervisor made for
this run, in prometheus_client's multiprocess format, at least every `FLUSH_INTERVAL`
(the application's periodic task) and before it renders; a scrape merges the files of
every worker with prometheus_client's `MultiProcessCollector`, so whichever worker
answers shows the whole group. The counter and histogram files of a worker that exited
stay, so totals never go back when a worker is replaced; its live gauges are dropped
(`worker_exited`). Gauges are merged as `GAUGE_MODES` says.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol, cast

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
    mmap_dict,
    multiprocess,
    utils,
)
from prometheus_client.metrics_core import Metric

__all__ = ["FLUSH_INTERVAL", "GAUGE_MODES", "PROMETHEUS_CONTENT_TYPE", "Metrics", "worker_exited"]

FLUSH_INTERVAL = 1.0  # seconds between a worker's writes of its totals for the others


class _Collecting(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _MmapFile(Protocol):
    def write_value(self, key: str, value: float, timestamp: float) -> None: ...

    def close(self) -> None: ...


# prometheus_client's multiprocess helpers, typed here (the package leaves them untyped).
_open_mmap = cast(Callable[[str], _MmapFile], mmap_dict.MmapedDict)
_mmap_key = cast(Callable[[str, str, list[str], list[str], str], str], mmap_dict.mmap_key)
_multiprocess_collector = cast(Callable[..., "_Collecting"], multiprocess.MultiProcessCollector)
_mark_process_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)
_go_float = cast(Callable[[float], str], utils.floatToGoString)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                    10, 30, 60)
_BOUNDS = tuple(float(bound) for bound in _LATENCY_BUCKETS)
_LE = (*(_go_float(bound) for bound in _BOUNDS), "+Inf")
_SUM = len(_LE)  # a histogram row: a count per bucket (not cumulative), then the sum

Row = list[float]


class _Family(NamedTuple):
    name: str
    help: str
    labels: tuple[str, ...]


REQUESTS = _Family("gateway_requests", "Requests answered, by route and status.",
                   ("route", "method", "status"))
LATENCY = _Family("gateway_request_duration_seconds", "Time to the response head, by route.",
                  ("route",))
UPSTREAM_REQUESTS = _Family("gateway_upstream_requests",
                            "Requests forwarded, by region, upstream and outcome.",
                            ("region", "upstream", "outcome"))
UPSTREAM_LATENCY = _Family("gateway_upstream_duration_seconds",
                           "Upstream time to the response head.", ("region", "upstream"))
FEED_STALENESS = _Family("gateway_feed_staleness_seconds",
                         "Seconds since the change feed was last read successfully.", ())
FEED_SEQ = _Family("gateway_feed_last_seq", "Last change-feed sequence number applied.", ())
FEED_ENTRY_DELAY = _Family(
    "gateway_feed_entry_delay_seconds",
    "Delay between the append of the last applied feed entry and its application.", ())
AUTH_REFUSALS = _Family("gateway_auth_refusals", "Credentials refused, by route and reason.",
                        ("route", "reason"))
CONFIG_RELOADS = _Family("gateway_config_reloads", "SIGHUP reloads, by result.", ("result",))
DATAPLANE_HANDOFFS = _Family(
    "gateway_dataplane_handoffs",
    "Connections the data plane handed to the aiohttp application, by what it met.",
    ("reason",))

# How the workers' values of a gauge make the group's (prometheus_client's multiprocess
# modes; `live...`: workers that are running). The feed: the worst worker. The process:
# memory and descriptors add up; the start time is the first worker's, which moves only
# when the whole group restarts, like the counters.
GAUGE_MODES = {
    FEED_STALENESS.name: "livemax",
    FEED_SEQ.name: "livemin",
    FEED_ENTRY_DELAY.name: "livemax",
    "process_virtual_memory_bytes": "livesum",
    "process_resident_memory_bytes": "livesum",
    "process_open_fds": "livesum",
    "process_max_fds": "livemin",
    "process_start_time_seconds": "min",
}


def _new_row() -> Row:
    return [0.0] * (_SUM + 1)


class _Count:
    """One label set of a counter and, for requests, its route's histogram row."""

    __slots__ = ("created", "row", "value")

    def __init__(self, row: Row | None = None) -> None:
        self.value = 0
        self.row: Row = [] if row is None else row  # [] for none (yet)
        self.created = time.time()


class Metrics:
    def __init__(self, shared_dir: Path | None = None, *, process_id: int | None = None) -> None:
        """`shared_dir`: the directory every worker of this run writes to (one writer per
        process id: `process_id` defaults to this process's)."""
        self._requests: dict[tuple[str, str, int], _Count] = {}
        self._latency: dict[tuple[str, ...], Row] = {}  # by (route,)
        self._latency_created: dict[tuple[str, ...], float] = {}
        self._upstreams: dict[tuple[str, str, str], _Count] = {}
        self._upstream_latency: dict[tuple[str, ...], Row] = {}  # by (region, upstream)
        self._upstream_latency_created: dict[tuple[str, ...], float] = {}
        self._refusals: dict[tuple[str, ...], _Count] = {}  # by (route, reason)
        self._reloads: dict[tuple[str, ...], _Count] = {}  # by (result,)
        self._handoffs: dict[tuple[str, ...], _Count] = {}  # by (reason,)
        self._gauges: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self._files: _SharedFiles | None = None
        if shared_dir is None:
            # process_start_time_seconds, memory and open files: restarts and leaks show.
            ProcessCollector(registry=self.registry)
            self.registry.register(_Collector(self))
        else:
            self._files = _SharedFiles(shared_dir, os.getpid() if process_id is None
                                       else process_id)
            self.registry.register(_Merged(shared_dir))

    @property
    def shared(self) -> bool:
        """Written for other workers (until `close`)."""
        return self._files is not None

    # --- the request path -------------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        try:
            count = self._requests[(route, method, status)]
        except KeyError:
            count = self._new_request(route, method, status)
        count.value += 1
        row = count.row
        row[bisect_left(_BOUNDS, seconds)] += 1
        row[_SUM] += seconds

    def observe_upstream(
        self, region: str, upstream: str, outcome: str, seconds: float | None = None
    ) -> None:
        try:
            count = self._upstreams[(region, upstream, outcome)]
        except KeyError:
            count = self._upstreams[(region, upstream, outcome)] = _Count()
        count.value += 1
        if seconds is not None:
            row = count.row
            if not row:
                row = count.row = self._upstream_row(region, upstream)
            row[bisect_left(_BOUNDS, seconds)] += 1
            row[_SUM] += seconds

    def _new_request(self, route: str, method: str, status: int) -> _Count:
        row = self._latency.get((route,))
        if row is None:
            row = self._latency[(route,)] = _new_row()
            self._latency_created[(route,)] = time.time()
        count = self._requests[(route, method, status)] = _Count(row)
        return count

    def _upstream_row(self, region: str, upstream: str) -> Row:
        key = (region, upstream)
        row = self._upstream_latency.get(key)
        if row is None:
            row = self._upstream_latency[key] = _new_row()
            self._upstream_latency_created[key] = time.time()
        return row

    # --- rarer events -------------------------------------------------------------------

    def observe_refusal(self, route: str, reason: str) -> None:
        _add(self._refusals, (route, reason))

    def observe_reload(self, ok: bool) -> None:
        _add(self._reloads, ("ok" if ok else "refused",))

    def observe_handoff(self, reason: str) -> None:
        _add(self._handoffs, (reason,))

    def handoffs(self, reason: str) -> int:
        """This process's hand-offs for `reason` so far."""
        count = self._handoffs.get((reason,))
        return 0 if count is None else count.value

    def set_feed(self, staleness: float, last_seq: float, entry_delay: float) -> None:
        self._gauges[FEED_STALENESS.name] = staleness
        self._gauges[FEED_SEQ.name] = last_seq
        self._gauges[FEED_ENTRY_DELAY.name] = entry_delay

    # --- collection ---------------------------------------------------------------------

    def flush(self) -> None:
        """Several workers: write this worker's totals for the others (no-op for one)."""
        files = self._files
        if files is None:
            return
        files.counters(REQUESTS, self._requests.items())
        files.histograms(LATENCY, self._latency.items())
        files.counters(UPSTREAM_REQUESTS, self._upstreams.items())
        files.histograms(UPSTREAM_LATENCY, self._upstream_latency.items())
        files.counters(AUTH_REFUSALS, self._refusals.items())
        files.counters(CONFIG_RELOADS, self._reloads.items())
        files.counters(DATAPLANE_HANDOFFS, self._handoffs.items())
        for name, value in self._gauges.items():
            files.gauge(name, _HELP[name], value)
        files.process()

    def render(self) -> bytes:
        self.flush()
        return bytes(generate_latest(self.registry))

    def close(self) -> None:
        """Several workers: write the last totals and close this worker's files."""
        if self._files is not None:
            self.flush()
            self._files.close()
            self._files = None


def _add(counts: dict[tuple[str, ...], _Count], key: tuple[str, ...]) -> None:
    count = counts.get(key)
    if count is None:
        count = counts[key] = _Count()
    count.value += 1


_HELP = {family.name: family.help for family in (FEED_STALENESS, FEED_SEQ, FEED_ENTRY_DELAY)}


def worker_exited(shared_dir: Path, pid: int) -> None:
    """The supervisor reaped worker `pid`: its live gauges leave the merge (its counters
    and histograms stay in it)."""
    _mark_process_dead(pid, str(shared_dir))


# --- one process: a collector reading the numbers ---------------------------------------


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        yield _counter(REQUESTS, metrics._requests.items())
        yield _histogram(LATENCY, metrics._latency, metrics._latency_created)
        yield _counter(UPSTREAM_REQUESTS, metrics._upstreams.items())
        yield _histogram(UPSTREAM_LATENCY, metrics._upstream_latency,
                         metrics._upstream_latency_created)
        for family in (FEED_STALENESS, FEED_SEQ, FEED_ENTRY_DELAY):
            gauge = Metric(family.name, family.help, "gauge")
            gauge.add_sample(family.name, {}, metrics._gauges.get(family.name, 0.0))
            yield gauge
        yield _counter(AUTH_REFUSALS, metrics._refusals.items())
        yield _counter(CONFIG_RELOADS, metrics._reloads.items())
        yield _counter(DATAPLANE_HANDOFFS, metrics._handoffs.items())


def _labels(family: _Family, values: Iterable[object]) -> dict[str, str]:
    return dict(zip(family.labels, map(str, values), strict=True))


Counts = Iterable[tuple[tuple[object, ...], _Count]]


def _counter(family: _Family, counts: Counts) -> Metric:
    metric = Metric(family.name, family.help, "counter")
    for values, count in counts:
        labels = _labels(family, values)
        metric.add_sample(f"{family.name}_total", labels, count.value)
        metric.add_sample(f"{family.name}_created", labels, count.created)
    return metric


def _histogram(family: _Family, rows: dict[tuple[str, ...], Row],
               created: dict[tuple[str, ...], float]) -> Metric:
    metric = Metric(family.name, family.help, "histogram")
    for key, row in rows.items():
        labels = _labels(family, key)
        total = 0.0
        for le, count in zip(_LE, row, strict=False):
            total += count
            metric.add_sample(f"{family.name}_bucket", {**labels, "le": le}, total)
        metric.add_sample(f"{family.name}_count", labels, total)
        metric.add_sample(f"{family.name}_sum", labels, row[_SUM])
        metric.add_sample(f"{family.name}_created", labels, created[key])
    return metric


# --- several workers: every worker's files merged, this worker's written ----------------


class _Merged:
    """prometheus_client's merge of every worker's files, in name order (as found, the
    order would follow the directory's)."""

    def __init__(self, shared_dir: Path) -> None:
        self._collector = _multiprocess_collector(None, path=str(shared_dir))

    def collect(self) -> list[Metric]:
        return sorted(self._collector.collect(), key=lambda metric: metric.name)


class _SharedFiles:
    """This worker's files in prometheus_client's multiprocess format (what its
    `MultiProcessCollector` merges), holding totals: a write replaces the last one.
    Counters, histograms and the `min` gauges are named by process id and the time they
    were opened, so a later process given the same id starts files of its own; live
    gauges by process id alone, as `mark_process_dead` finds them."""

    def __init__(self, directory: Path, pid: int) -> None:
        self._directory = directory
        self._pid = pid
        self._unique = f"{pid}-{time.monotonic_ns()}"
        self._files: dict[str, _MmapFile] = {}
        self._keys: dict[tuple[str, str, tuple[str, ...]], str] = {}
        self._written: dict[str, float] = {}
        self._rows_written: dict[tuple[str, tuple[str, ...]], Row] = {}
        self._process = ProcessCollector(registry=None)

    def _file(self, kind: str) -> _MmapFile:
        found = self._files.get(kind)
        if found is None:
            ident = self._pid if kind.startswith("gauge_live") else self._unique
            found = self._files[kind] = _open_mmap(str(self._directory / f"{kind}_{ident}.db"))
        return found

    def _key(self, family: _Family, sample: str, labels: tuple[str, ...],
             names: tuple[str, ...] | None = None) -> str:
        cache = (family.name, sample, labels)
        key = self._keys.get(cache)
        if key is None:
            key = self._keys[cache] = _mmap_key(
                family.name, sample, list(names or family.labels), list(labels), family.help)
        return key

    def _write(self, kind: str, key: str, value: float) -> None:
        if self._written.get(key) != value:
            self._file(kind).write_value(key, value, 0.0)
            self._written[key] = value

    def counters(self, family: _Family, counts: Counts) -> None:
        for values, count in counts:
            labels = tuple(map(str, values))
            self._write("counter", self._key(family, f"{family.name}_total", labels),
                        count.value)

    def histograms(self, family: _Family, rows: Iterable[tuple[tuple[str, ...], Row]]) -> None:
        bucket_names = (*family.labels, "le")
        for labels, row in rows:
            if self._rows_written.get((family.name, labels)) == row:
                continue  # unchanged since the last write
            for le, count in zip(_LE, row, strict=False):
                self._write("histogram", self._key(family, f"{family.name}_bucket",
                                                   (*labels, le), bucket_names), count)
            self._write("histogram", self._key(family, f"{family.name}_sum", labels),
                        row[_SUM])
            self._rows_written[(family.name, labels)] = row.copy()

    def gauge(self, name: str, help_text: str, value: float) -> None:
        mode = GAUGE_MODES[name]
        self._write(f"gauge_{mode}", self._key(_Family(name, help_text, ()), name, ()), value)

    def process(self) -> None:
        """This worker's memory, descriptors and CPU time (prometheus_client's process
        collector, read here): merged with the other workers' as `GAUGE_MODES` says."""
        for metric in self._process.collect():
            family = _Family(metric.name, metric.documentation, ())
            for sample in metric.samples:
                if metric.type == "counter":  # CPU seconds: the dead workers' stay counted
                    self._write("counter", self._key(family, sample.name, ()), sample.value)
                elif sample.name in GAUGE_MODES:
                    self._write(f"gauge_{GAUGE_MODES[sample.name]}",
                                self._key(family, sample.name, ()), sample.value)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()

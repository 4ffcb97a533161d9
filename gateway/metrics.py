"""Prometheus metrics: plain numbers on the request path, exported when collected.

`observe_request` and `observe_upstream` run for every proxied request, so they only add
to numbers this object holds: a count per label set and, per route (or upstream), a
histogram row (one count per bucket, found with `bisect`, then the sum). No lock, no
prometheus_client object: everything runs on the event loop's thread. The numbers are
read when the registry is collected (`render`).

One registry per application (tests build many apps side by side), read straight from
those numbers, with prometheus_client's process collector.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, cast

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest, utils
from prometheus_client.metrics_core import Metric

__all__ = ["PROMETHEUS_CONTENT_TYPE", "Metrics"]

_go_float = cast(Callable[[float], str], utils.floatToGoString)  # untyped in the package

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
    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], _Count] = {}
        self._latency: dict[tuple[str, ...], Row] = {}  # by (route,)
        self._latency_created: dict[tuple[str, ...], float] = {}
        self._upstreams: dict[tuple[str, str, str], _Count] = {}
        self._upstream_latency: dict[tuple[str, ...], Row] = {}  # by (region, upstream)
        self._upstream_latency_created: dict[tuple[str, ...], float] = {}
        self._refusals: dict[tuple[str, ...], _Count] = {}  # by (route, reason)
        self._reloads: dict[tuple[str, ...], _Count] = {}  # by (result,)
        self._gauges: dict[str, float] = {}
        self.registry = CollectorRegistry()
        # process_start_time_seconds, memory and open files: restarts and leaks show.
        ProcessCollector(registry=self.registry)
        self.registry.register(_Collector(self))

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

    def set_feed(self, staleness: float, last_seq: float, entry_delay: float) -> None:
        self._gauges[FEED_STALENESS.name] = staleness
        self._gauges[FEED_SEQ.name] = last_seq
        self._gauges[FEED_ENTRY_DELAY.name] = entry_delay

    # --- collection ---------------------------------------------------------------------

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def _add(counts: dict[tuple[str, ...], _Count], key: tuple[str, ...]) -> None:
    count = counts.get(key)
    if count is None:
        count = counts[key] = _Count()
    count.value += 1


# --- the collector reading the numbers ---------------------------------------------------


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

"""Prometheus metrics, one registry per application (tests build many apps side by side)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["PROMETHEUS_CONTENT_TYPE", "Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                    10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._upstream_children: dict[tuple[str, str, str], Any] = {}
        self._upstream_latency_children: dict[tuple[str, str], Any] = {}
        self.registry = CollectorRegistry()
        # process_start_time_seconds, memory and open files: restarts and leaks show.
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "gateway_requests", "Requests answered, by route and status.",
            ("route", "method", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds", "Time to the response head, by route.",
            ("route",), buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.upstream_requests = Counter(
            "gateway_upstream_requests", "Requests forwarded, by region, upstream and outcome.",
            ("region", "upstream", "outcome"), registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_duration_seconds", "Upstream time to the response head.",
            ("region", "upstream"), buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.feed_staleness = Gauge(
            "gateway_feed_staleness_seconds",
            "Seconds since the change feed was last read successfully.",
            registry=self.registry,
        )
        self.feed_seq = Gauge(
            "gateway_feed_last_seq", "Last change-feed sequence number applied.",
            registry=self.registry,
        )
        self.feed_entry_delay = Gauge(
            "gateway_feed_entry_delay_seconds",
            "Delay between the append of the last applied feed entry and its application.",
            registry=self.registry,
        )
        self.auth_refusals = Counter(
            "gateway_auth_refusals", "Credentials refused, by route and reason.",
            ("route", "reason"), registry=self.registry,
        )
        self.config_reloads = Counter(
            "gateway_config_reloads", "SIGHUP reloads, by result.", ("result",),
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # labels() takes a lock and builds a key each call; the children are cached here.
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def observe_refusal(self, route: str, reason: str) -> None:
        self.auth_refusals.labels(route, reason).inc()  # refusals are rare: no child cache

    def observe_upstream(
        self, region: str, upstream: str, outcome: str, seconds: float | None = None
    ) -> None:
        key = (region, upstream, outcome)
        counter = self._upstream_children.get(key)
        if counter is None:
            counter = self._upstream_children[key] = self.upstream_requests.labels(*key)
        counter.inc()
        if seconds is not None:
            histogram = self._upstream_latency_children.get(key[:2])
            if histogram is None:
                histogram = self._upstream_latency_children[key[:2]] = (
                    self.upstream_latency.labels(region, upstream))
            histogram.observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

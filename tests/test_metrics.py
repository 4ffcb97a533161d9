"""gateway.metrics: the numbers counted on the request path come out of render() exactly
as prometheus_client's own metrics would show them; several workers' files merge."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, parser
from prometheus_client.metrics_core import Metric

from gateway.metrics import Metrics, worker_exited

_parse = cast(Callable[[str], Iterable[Metric]], parser.text_string_to_metric_families)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
           60)
# Every bound exactly (an observation equal to a bound counts in that bucket), either side
# of each, zero and far beyond the last.
SECONDS = [0.0, 1e-9, 1000.0, *BUCKETS, *(b * 0.999 for b in BUCKETS),
           *(b * 1.001 for b in BUCKETS)]


class Reference:
    """The same metrics as prometheus_client's own objects, observed one call at a time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("gateway_requests", "Requests answered, by route and status.",
                                ("route", "method", "status"), registry=r)
        self.latency = Histogram("gateway_request_duration_seconds",
                                 "Time to the response head, by route.", ("route",),
                                 buckets=BUCKETS, registry=r)
        self.upstreams = Counter("gateway_upstream_requests",
                                 "Requests forwarded, by region, upstream and outcome.",
                                 ("region", "upstream", "outcome"), registry=r)
        self.upstream_latency = Histogram("gateway_upstream_duration_seconds",
                                          "Upstream time to the response head.",
                                          ("region", "upstream"), buckets=BUCKETS, registry=r)
        self.staleness = Gauge("gateway_feed_staleness_seconds",
                               "Seconds since the change feed was last read successfully.",
                               registry=r)
        self.seq = Gauge("gateway_feed_last_seq", "Last change-feed sequence number applied.",
                         registry=r)
        self.delay = Gauge(
            "gateway_feed_entry_delay_seconds",
            "Delay between the append of the last applied feed entry and its application.",
            registry=r)
        self.refusals = Counter("gateway_auth_refusals",
                                "Credentials refused, by route and reason.",
                                ("route", "reason"), registry=r)
        self.reloads = Counter("gateway_config_reloads", "SIGHUP reloads, by result.",
                               ("result",), registry=r)
        self.handoffs = Counter(
            "gateway_dataplane_handoffs",
            "Connections the data plane handed to the aiohttp application, by what it met.",
            ("reason",), registry=r)

    def render(self) -> str:
        return bytes(generate_latest(self.registry)).decode()


def comparable(text: str) -> str:
    """Without the process collector's lines and with every `_created` time blanked."""
    lines = [line for line in text.splitlines() if "process_" not in line]
    return re.sub(r"^(\w+_created(\{[^}]*\})?) \S+$", r"\1 T", "\n".join(lines), flags=re.M)


def observe_both(metrics: Metrics, reference: Reference, seed: int, count: int) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        seconds = rng.choice(SECONDS)
        route, method, status = rng.choice([("api", "GET", 200), ("api", "POST", 201),
                                            ("public", "GET", 502), ("readyz", "GET", 200)])
        metrics.observe_request(route, method, status, seconds)
        reference.requests.labels(route, method, str(status)).inc()
        reference.latency.labels(route).observe(seconds)
        region, upstream = rng.choice([("sg", "http://a:1"), ("sg", "http://b:2"),
                                       ("eu", "http://c:3")])
        outcome = rng.choice(["ok", "ok", "ok", "refused", "timeout"])
        if outcome == "ok":
            metrics.observe_upstream(region, upstream, outcome, seconds)
            reference.upstream_latency.labels(region, upstream).observe(seconds)
        else:
            metrics.observe_upstream(region, upstream, outcome)
        reference.upstreams.labels(region, upstream, outcome).inc()
        if rng.random() < 0.05:
            metrics.observe_refusal("api", "expired")
            reference.refusals.labels("api", "expired").inc()
        if rng.random() < 0.05:
            reason = rng.choice(["head", "body", "route"])
            metrics.observe_handoff(reason)
            reference.handoffs.labels(reason).inc()


def test_a_fresh_registry_renders_as_prometheus_client_does() -> None:
    metrics, reference = Metrics(), Reference()
    assert comparable(metrics.render().decode()) == comparable(reference.render())
    assert "process_start_time_seconds" in metrics.render().decode()


def test_observations_show_up_in_render_exactly() -> None:
    metrics, reference = Metrics(), Reference()
    observe_both(metrics, reference, seed=1, count=5000)
    metrics.observe_reload(True)
    reference.reloads.labels("ok").inc()
    metrics.set_feed(2.5, 42, 0.125)
    reference.staleness.set(2.5)
    reference.seq.set(42)
    reference.delay.set(0.125)
    text = metrics.render().decode()
    assert comparable(text) == comparable(reference.render())
    # Rendering reads; it does not consume: more observations add to the same totals.
    observe_both(metrics, reference, seed=2, count=1000)
    assert comparable(metrics.render().decode()) == comparable(reference.render())


def test_each_application_counts_for_itself() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("api", "GET", 200, 0.01)
    assert 'gateway_requests_total{method="GET",route="api",status="200"} 1.0' in (
        first.render().decode())
    assert "gateway_requests_total{" not in second.render().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in _parse(text) for s in family.samples}


def test_workers_sharing_a_directory_render_the_sum(tmp_path: Path) -> None:
    one, two, alone = Metrics(tmp_path, process_id=101), Metrics(tmp_path, process_id=102), \
        Reference()
    observe_both(one, alone, seed=3, count=700)
    observe_both(two, alone, seed=4, count=300)
    one.set_feed(1.0, 40, 0.5)
    two.set_feed(3.0, 38, 0.25)
    two.flush()  # what the periodic write does; rendering writes the renderer's own first
    expected = {key: value for key, value in samples(alone.render()).items()
                if not key[0].endswith("_created") and not key[0].startswith("gateway_feed")}
    got = samples(one.render().decode())
    # Counts exactly; sums added in another order may differ in the last digit.
    assert {key: value for key, value in got.items() if key in expected} == pytest.approx(
        expected, rel=1e-12)
    assert set(expected) <= set(got)
    # The feed: the worst worker's staleness and delay, the lowest sequence number.
    assert got[("gateway_feed_staleness_seconds", frozenset())] == 3.0
    assert got[("gateway_feed_entry_delay_seconds", frozenset())] == 0.5
    assert got[("gateway_feed_last_seq", frozenset())] == 38
    assert got[("process_resident_memory_bytes", frozenset())] > 0
    def requests(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {key: value for key, value in samples(text).items()
                if key[0].startswith("gateway_")}

    assert requests(two.render().decode()) == requests(one.render().decode())


def test_a_replaced_worker_still_counts_and_its_gauges_leave(tmp_path: Path) -> None:
    def served(metrics: Metrics) -> float:
        return samples(metrics.render().decode())[
            ("gateway_requests_total",
             frozenset({"route": "api", "method": "GET", "status": "200"}.items()))]

    staying, leaving = Metrics(tmp_path, process_id=201), Metrics(tmp_path, process_id=202)
    for _ in range(5):
        staying.observe_request("api", "GET", 200, 0.01)
    for _ in range(7):
        leaving.observe_request("api", "GET", 200, 0.01)
    leaving.set_feed(9.0, 1, 0.0)
    staying.set_feed(1.0, 5, 0.0)
    leaving.close()  # its last write, as at a worker's stop
    assert served(staying) == 12
    assert samples(staying.render().decode())[("gateway_feed_staleness_seconds",
                                               frozenset())] == 9.0
    worker_exited(tmp_path, 202)
    assert served(staying) == 12  # counters stay
    assert samples(staying.render().decode())[("gateway_feed_staleness_seconds",
                                               frozenset())] == 1.0  # its gauges do not
    # A new worker, even one given the old one's process id, starts files of its own.
    again = Metrics(tmp_path, process_id=202)
    again.observe_request("api", "GET", 200, 0.01)
    assert served(again) == 13 and served(staying) == 13

"""What tracing costs a proxied request: its header handling and access line, timed.

Run: .venv/bin/python bench/trace_context.py [--before REV]   (about 30 s)

One request's worth of the work that tracing touches, for a typical proxied request
(nine headers, a bearer token): the outbound header filter
(`forwarded_request_headers`) and the access line (`access_line`), with

- tracing off and no `traceparent` from the client (a trace id and a span id made);
- tracing off and a client `traceparent` and `tracestate` (parsed, kept, passed on);
- tracing on (`tracing.otlp_endpoint` set): a span started, attributes set and ended
  into the batch processor's queue, exported to nowhere (a no-op exporter); and with
  `sample_ratio: 0`, a trace the gateway starts and does not record;
- with `--before REV`: the same filter and line from `gateway/proxy/headers.py` and
  `gateway/accesslog.py` as they were at commit REV (read with `git show`), i.e. the
  cost before tracing when REV predates it.

Rows are run in turn, round after round (a busy machine slows them alike), each timed
in this thread's CPU time (time spent descheduled, or in the exporter's thread, is not
the request path's) and keeping its best round: microseconds per request.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from multidict import CIMultiDict
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from gateway.accesslog import access_line
from gateway.config import TracingConfig, Url
from gateway.proxy.headers import TrustedProxies, forwarded_request_headers
from gateway.testing.timing import best_per_call, module_at
from gateway.tracing.spans import Spans
from gateway.tracing.tracer import Tracing

ROUNDS, PER_ROUND = 80, 1_000  # many short rounds: the best one is a quiet one
TRUSTED = TrustedProxies()
HEADERS = [
    ("Host", "api.sg.amity.co"), ("User-Agent", "bench/1.0"), ("Accept", "application/json"),
    ("Accept-Encoding", "gzip, deflate"), ("Accept-Language", "en"),
    ("Authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"),
    ("Content-Type", "application/json"), ("Connection", "keep-alive"),
    ("X-Client-Version", "5.2.1"),
]
TRACEPARENT = ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
TRACESTATE = ("tracestate", "vendor=opaque")


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _line(log: Callable[..., str], **trace: str) -> str:
    return log(request_id="0123456789abcdef0123456789abcdef", method="GET",
               path="/api/v3/channels", status=200, route="api", region="sg",
               upstream="http://10.0.0.1:8080", elapsed=0.0012, bytes_in=0, bytes_out=512,
               remote="10.1.2.3", principal="access:net:bob", refusal=None, **trace)


def now(tracing: Tracing, incoming: CIMultiDict[str]) -> Callable[[], object]:
    def request() -> object:
        trace = tracing.begin(incoming)
        forwarded_request_headers(incoming, peer="10.1.2.3", scheme="https",
                                  host="api.sg.amity.co", trusted=TRUSTED,
                                  request_id="r1", drop_authorization=True, trace=trace)
        if trace.span is not None:
            tracing.finish(trace, route="api", method="GET", status=200, region="sg",
                           upstream="http://10.0.0.1:8080", principal=None)
        return _line(access_line, trace_id=trace.trace_id)

    return request


def before(rev: str, incoming: CIMultiDict[str]) -> Callable[[], object]:
    headers, accesslog = (module_at(rev, "gateway/proxy/headers.py"),
                          module_at(rev, "gateway/accesslog.py"))
    trusted = headers.TrustedProxies()

    def request() -> object:
        headers.forwarded_request_headers(incoming, peer="10.1.2.3", scheme="https",
                                          host="api.sg.amity.co", trusted=trusted,
                                          request_id="r1", drop_authorization=True)
        return _line(accesslog.access_line)

    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also time the code at commit REV")
    args = parser.parse_args()
    plain = CIMultiDict(HEADERS)
    traced = CIMultiDict([*HEADERS, TRACEPARENT, TRACESTATE])
    off = Tracing(TracingConfig())
    on = Tracing(TracingConfig(otlp_endpoint=Url("http://127.0.0.1:4318")))
    on.spans = Spans(on.config, exporter=_Discard())
    unsampled = Tracing(TracingConfig(otlp_endpoint=Url("http://127.0.0.1:4318"),
                                      sample_ratio=0.0))
    unsampled.spans = Spans(unsampled.config, exporter=_Discard())
    rows: dict[str, Callable[[], object]] = {}
    if args.before:
        rows[f"before ({args.before}), no traceparent"] = before(args.before, plain)
        rows[f"before ({args.before}), client traceparent"] = before(args.before, traced)
    rows.update({
        "tracing off, no traceparent": now(off, plain),
        "tracing off, client traceparent + tracestate": now(off, traced),
        "tracing on, no traceparent (span made)": now(on, plain),
        "tracing on, client traceparent (span made)": now(on, traced),
        "tracing on, no traceparent, sample_ratio 0": now(unsampled, plain),
    })
    timings = {name: seconds * 1e6 for name, seconds in
               best_per_call(rows, ROUNDS, PER_ROUND).items()}
    on.spans.shutdown()
    unsampled.spans.shutdown()
    width = max(map(len, timings))
    print(f"{'filter + access line, per request':<{width}}  {'µs':>6}")
    for name, micros in timings.items():
        print(f"{name:<{width}}  {micros:>6.2f}")


if __name__ == "__main__":
    main()

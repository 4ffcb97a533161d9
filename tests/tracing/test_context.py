"""traceparent parsing and formatting as a table (W3C Trace Context, hostile spellings
included), the request's trace, what crosses the proxy, and the access line's traceId."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from gateway.accesslog import access_line
from gateway.proxy.headers import TrustedProxies, forwarded_request_headers
from gateway.tracing.context import (
    MAX_LENGTH,
    TraceParent,
    format_traceparent,
    parse_traceparent,
)
from gateway.tracing.request import incoming_trace, new_span_id, new_trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GOOD = f"00-{TRACE}-{PARENT}-01"

KEPT = [
    (GOOD, TraceParent(TRACE, PARENT, True)),
    (f"00-{TRACE}-{PARENT}-00", TraceParent(TRACE, PARENT, False)),
    # Only the sampled bit is read; the other flags are not propagated.
    (f"00-{TRACE}-{PARENT}-09", TraceParent(TRACE, PARENT, True)),
    (f"00-{TRACE}-{PARENT}-fe", TraceParent(TRACE, PARENT, False)),
    # Optional whitespace around the value (the data plane's parser keeps trailing blanks).
    (f" {GOOD}\t ", TraceParent(TRACE, PARENT, True)),
    # Later versions: the first 55 characters, when what follows starts with `-`.
    (f"01-{TRACE}-{PARENT}-01", TraceParent(TRACE, PARENT, True)),
    (f"cc-{TRACE}-{PARENT}-01-what-the-future-adds", TraceParent(TRACE, PARENT, True)),
    (f"fe-{TRACE}-{PARENT}-00-", TraceParent(TRACE, PARENT, False)),
    # Zeros are fine as long as an id is not all zeros.
    (f"00-{'0' * 31}1-{'0' * 15}1-01", TraceParent("0" * 31 + "1", "0" * 15 + "1", True)),
]

REFUSED = [
    ("", "empty"),
    ("00", "a version alone"),
    (GOOD[:-1], "one digit short"),
    (GOOD + "0", "one character too many for version 00"),
    (GOOD + "-extra", "version 00 with a field after the flags"),
    (GOOD.upper(), "uppercase"),
    (f"00-{TRACE.upper()}-{PARENT}-01", "uppercase trace id"),
    (f"00-{TRACE}-{PARENT.upper()}-01", "uppercase parent id"),
    (f"00-{TRACE}-{PARENT}-0A", "uppercase flags"),
    (f"0A-{TRACE}-{PARENT}-01", "uppercase version"),
    (f"00-{'0' * 32}-{PARENT}-01", "all-zero trace id"),
    (f"00-{TRACE}-{'0' * 16}-01", "all-zero parent id"),
    (f"ff-{TRACE}-{PARENT}-01", "version ff is invalid"),
    (f"ff-{TRACE}-{PARENT}-01-00", "version ff, longer"),
    (f"00_{TRACE}_{PARENT}_01", "underscores for dashes"),
    (f"00-{TRACE}-{PARENT}+01", "a plus for the last dash"),
    (f"00 {TRACE} {PARENT} 01", "spaces for dashes"),
    (f"00-{TRACE[:-1]}-{PARENT}0-01", "a dash one place off"),
    (f"00-{TRACE}--{PARENT[1:]}-01", "a dash inside the parent id"),
    (f"00-{TRACE[:-2]}0x-{PARENT}-01", "not hex: x"),
    (f"00-{TRACE[:-1]}g-{PARENT}-01", "not hex: g"),
    (f"00-{TRACE[:-1]}_-{PARENT}-01", "an underscore, which int(..., 16) accepts"),
    (f"00-{TRACE[:-1]} -{PARENT}-01", "a space inside an id"),
    (f"00-{TRACE[:-1]}é-{PARENT}-01", "non-ASCII"),
    (f"00-{TRACE[:-1]}\u0661-{PARENT}-01", "a non-ASCII digit"),
    (f"00-{TRACE[:-1]}\udcff-{PARENT}-01", "an undecodable byte, surrogate-escaped"),
    (f"0-{TRACE}-{PARENT}-01", "a one-digit version"),
    (f"000-{TRACE}-{PARENT}-01", "a three-digit version"),
    (f"01-{TRACE}-{PARENT}-010", "a later version, flags not followed by a dash"),
    (f"01-{TRACE}-{PARENT}-0", "a later version, short"),
    (f"cc-{TRACE}-{PARENT}-01-" + "x" * (MAX_LENGTH - 55), "a later version, too long"),
    (GOOD + "-" + "0" * 100_000, "huge"),
    (f"{GOOD},{GOOD}", "two values folded into one field"),
    (f"00-{TRACE}-{PARENT}-01\x00", "NUL after the flags"),
]


@pytest.mark.parametrize(("value", "parsed"), KEPT, ids=[v for v, _ in KEPT])
def test_well_formed_values_are_kept(value: str, parsed: TraceParent) -> None:
    assert parse_traceparent(value) == parsed


@pytest.mark.parametrize("value", [v for v, _ in REFUSED], ids=[why for _, why in REFUSED])
def test_malformed_values_start_a_new_trace(value: str) -> None:
    assert parse_traceparent(value) is None


def test_format_is_version_00() -> None:
    assert format_traceparent(TRACE, PARENT, True) == GOOD
    assert format_traceparent(TRACE, PARENT, False) == f"00-{TRACE}-{PARENT}-00"
    made = format_traceparent(new_trace_id(), new_span_id(), False)
    assert parse_traceparent(made) is not None and len(made) == 55


def test_new_ids_are_lowercase_hex_and_differ() -> None:
    traces = {new_trace_id() for _ in range(1000)}
    spans = {new_span_id() for _ in range(1000)}
    assert len(traces) == len(spans) == 1000
    assert all(len(t) == 32 and int(t, 16) and t == t.lower() for t in traces)
    assert all(len(s) == 16 and int(s, 16) and s == s.lower() for s in spans)


def test_a_request_joins_the_callers_trace_with_a_span_of_its_own() -> None:
    trace = incoming_trace(CIMultiDict({"TraceParent": GOOD, "tracestate": "a=1"}))
    assert trace.trace_id == TRACE and trace.sampled and trace.keeps_tracestate
    assert trace.span_id != PARENT and trace.span is None
    assert trace.traceparent == f"00-{TRACE}-{trace.span_id}-01"
    later = incoming_trace(CIMultiDict({"traceparent": f"42-{TRACE}-{PARENT}-00-more"}))
    assert later.traceparent == f"00-{TRACE}-{later.span_id}-00"  # answered in version 00


@pytest.mark.parametrize("headers", [
    CIMultiDict[str](),
    CIMultiDict({"traceparent": GOOD.upper()}),
    CIMultiDict([("traceparent", GOOD), ("traceparent", GOOD)]),  # two fields: not one trace
], ids=["absent", "malformed", "twice"])
def test_otherwise_a_new_trace_starts(headers: CIMultiDict[str]) -> None:
    trace = incoming_trace(headers)
    assert trace.trace_id != TRACE and len(trace.trace_id) == 32
    assert not trace.sampled and not trace.keeps_tracestate and trace.parent is None


def _upstream(incoming: CIMultiDict[str]) -> CIMultiDict[str]:
    return forwarded_request_headers(
        incoming, peer="127.0.0.1", scheme="http", host="gw", trusted=TrustedProxies(),
        request_id="r1", trace=incoming_trace(incoming))


def test_upstreams_get_the_gateways_span_as_parent_and_the_tracestate() -> None:
    out = _upstream(CIMultiDict([("traceparent", GOOD), ("tracestate", "a=1"),
                                 ("TraceState", "b=2")]))
    assert out.getall("traceparent") == [out["traceparent"]]
    sent = parse_traceparent(out["traceparent"])
    assert sent is not None and sent.trace_id == TRACE and sent.parent_id != PARENT
    assert sent.sampled
    assert out.getall("tracestate") == ["a=1", "b=2"]


@pytest.mark.parametrize("traceparent", [None, GOOD.upper(), f"00-{'0' * 32}-{PARENT}-01"])
def test_a_tracestate_without_a_kept_traceparent_is_dropped(traceparent: str | None) -> None:
    incoming = CIMultiDict({"tracestate": "vendor=opaque"})
    if traceparent is not None:
        incoming["traceparent"] = traceparent
    out = _upstream(incoming)
    assert "tracestate" not in out
    sent = parse_traceparent(out["traceparent"])
    assert sent is not None and sent.trace_id != TRACE and not sent.sampled


def test_without_a_trace_the_filter_passes_both_unchanged() -> None:
    incoming = CIMultiDict({"traceparent": GOOD, "tracestate": "a=1"})
    out = forwarded_request_headers(incoming, peer=None, scheme="http", host=None,
                                    trusted=TrustedProxies(), request_id="r1")
    assert out["traceparent"] == GOOD and out["tracestate"] == "a=1"


def test_the_access_line_carries_the_trace_id() -> None:
    line = access_line(request_id="r1", trace_id=TRACE, method="GET", path="/", status=200,
                       route="public", region=None, upstream=None, elapsed=0.001,
                       bytes_in=0, bytes_out=0, remote=None, principal=None, refusal=None)
    entry = json.loads(line)
    assert entry["traceId"] == TRACE and entry["requestId"] == "r1"

"""A request's trace: the caller's trace joined (its `traceparent` well-formed) or a new
one started, and the gateway's own span id, which upstreams receive as their parent."""

from __future__ import annotations

from dataclasses import dataclass
from random import getrandbits
from typing import TYPE_CHECKING

from multidict import MultiMapping

from gateway.tracing.context import TraceParent, format_traceparent, parse_traceparent

if TYPE_CHECKING:
    from opentelemetry.trace import Span

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


@dataclass(slots=True, init=False)
class RequestTrace:
    trace_id: str  # 32 hex digits: the caller's trace, or a new one; in every access line
    span_id: str  # 16 hex digits: the gateway's span, the parent id sent upstream
    sampled: bool  # the `sampled` flag sent upstream
    parent: TraceParent | None  # the caller's context when its traceparent was kept
    span: Span | None  # being recorded: only while spans are exported and sampled

    # __init__ written out (init=False): see gateway.auth.principal.Principal.
    def __init__(self, trace_id: str, span_id: str, sampled: bool,
                 parent: TraceParent | None, span: Span | None = None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self.parent = parent
        self.span = span

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.sampled)

    @property
    def keeps_tracestate(self) -> bool:
        """`tracestate` belongs to the caller's traceparent: passed on only with it."""
        return self.parent is not None


def incoming_trace(headers: MultiMapping[str]) -> RequestTrace:
    """The trace of a request received with `headers`; a new span id either way.

    Several `traceparent` fields are not one trace to join: a new one starts.
    """
    value = headers.get(TRACEPARENT)
    parent = None
    if value is not None and len(headers.getall(TRACEPARENT)) == 1:
        parent = parse_traceparent(value)
    if parent is None:
        return RequestTrace(new_trace_id(), new_span_id(), False, None)
    return RequestTrace(parent.trace_id, new_span_id(), parent.sampled, parent)


# The random module's generator: no system call per id (os.urandom would be one), and
# Python reseeds it in a forked worker. bytes.hex() is about twice as fast as formatting
# the integer. `or 1`: an all-zero id is invalid.
def new_trace_id() -> str:
    return (getrandbits(128) or 1).to_bytes(16, "big").hex()


def new_span_id() -> str:
    return (getrandbits(64) or 1).to_bytes(8, "big").hex()

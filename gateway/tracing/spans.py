"""Server spans with the OpenTelemetry SDK, exported over OTLP/HTTP (protobuf).

The request path only starts a span and ends it; a BatchSpanProcessor queues ended
spans and its own thread encodes and posts them in batches, off the event loop.
Sampling is the SDK's ParentBased(TraceIdRatioBased): a caller's `sampled` flag decides
for its trace, `tracing.sample_ratio` for the traces the gateway starts.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    format_span_id,
    format_trace_id,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from gateway import __version__
from gateway.config import TracingConfig
from gateway.tracing.request import RequestTrace

TRACES_PATH = "/v1/traces"
EXPORT_TIMEOUT = 5.0  # seconds per batch sent: bounds how long a stop waits on a dead collector


def traces_url(endpoint: str) -> str:
    """`tracing.otlp_endpoint` is the collector's base URL (`http://collector:4318`);
    a URL already ending in /v1/traces is used as it is."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class Spans:
    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None) -> None:
        """`exporter`: OTLP/HTTP to `tracing.otlp_endpoint` unless given (benchmarks)."""
        assert config.otlp_endpoint is not None
        self.url = traces_url(config.otlp_endpoint)
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            resource=Resource.create({SERVICE_NAME: config.service_name}),
            shutdown_on_exit=False,  # the application's stop shuts it down
        )
        self._provider.add_span_processor(BatchSpanProcessor(
            exporter or OTLPSpanExporter(endpoint=self.url, timeout=EXPORT_TIMEOUT)))
        self._tracer = self._provider.get_tracer("gateway", __version__)

    def start(self, trace: RequestTrace) -> None:
        """Start the request's server span: a child of the caller's span when its
        traceparent was kept. The span's ids and sampling decision replace `trace`'s."""
        parent = trace.parent
        context = Context()  # never an ambient span: the request's own parent, or none
        if parent is not None:
            remote = SpanContext(
                trace_id=int(parent.trace_id, 16), span_id=int(parent.parent_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else 0))
            context = set_span_in_context(NonRecordingSpan(remote), context)
        span = self._tracer.start_span("request", context=context, kind=SpanKind.SERVER)
        own = span.get_span_context()
        trace.trace_id = format_trace_id(own.trace_id)
        trace.span_id = format_span_id(own.span_id)
        trace.sampled = own.trace_flags.sampled
        trace.span = span if span.is_recording() else None

    def finish(self, trace: RequestTrace, *, route: str, method: str, status: int,
               region: str | None, upstream: str | None, principal_kind: str | None) -> None:
        span = trace.span
        if span is None:
            return
        trace.span = None
        span.update_name(route)  # unknown when the span started on the aiohttp path
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "http.response.status_code": status,
            "gateway.route": route,
        }
        for key, value in (("gateway.region", region), ("gateway.upstream", upstream),
                           ("gateway.principal.kind", principal_kind)):
            if value is not None:
                attributes[key] = value
        span.set_attributes(attributes)
        if status >= 500:  # OpenTelemetry's HTTP conventions: a server's 4xx is no error
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def shutdown(self) -> None:
        """Blocking: sends the spans still queued, then stops the export thread."""
        self._provider.shutdown()

"""W3C trace context on every request, spans exported over OTLP/HTTP when configured.

context.py parses and formats `traceparent` (pure); request.py gives each request its
trace and the gateway's own span id; tracer.py is what the request paths call;
spans.py (OpenTelemetry, imported only when `tracing.otlp_endpoint` is set) records and
exports the spans.
"""

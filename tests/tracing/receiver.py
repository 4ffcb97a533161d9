"""A small OTLP/HTTP trace receiver on loopback: POST /v1/traces with a protobuf
ExportTraceServiceRequest, decoded with opentelemetry-proto's classes."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_id: str  # "" for a root span
    kind: int
    status_code: int
    attributes: dict[str, str | int]
    service_name: str


@dataclass
class Receiver:
    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    posts: int = 0
    content_types: set[str] = field(default_factory=set)


def _value(value: AnyValue) -> str | int:
    return value.int_value if value.HasField("int_value") else value.string_value


def _decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(), kind=span.kind,
                    status_code=span.status.code,
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    service_name=str(resource.get("service.name", ""))))
    return spans


SERVER = Span.SpanKind.SPAN_KIND_SERVER


@asynccontextmanager
async def running_receiver(host: str = "127.0.0.1") -> AsyncIterator[Receiver]:
    received = Receiver()

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        received.posts += 1
        received.content_types.add(request.content_type)
        received.spans.extend(_decode(body))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    received.url = f"http://{host}:{port}"
    try:
        yield received
    finally:
        await runner.cleanup()

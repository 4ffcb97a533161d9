"""What both request paths (the data plane and the aiohttp application) call: `begin`
when a request arrives, `finish` when its answer is done.

With `tracing.otlp_endpoint` unset, `begin` is the traceparent handling alone and
`finish` is never reached (callers check `trace.span`): no span object, no clock read,
no OpenTelemetry call (spans.py, the SDK and the exporter are not even imported).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import MultiMapping

from gateway.auth.principal import Principal
from gateway.config import TracingConfig
from gateway.tracing.request import RequestTrace, incoming_trace

if TYPE_CHECKING:
    from gateway.tracing.spans import Spans

log = logging.getLogger("gateway.tracing")


class Tracing:
    """One per process; spans exported between the application's start and stop."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        self.spans: Spans | None = None

    def begin(self, headers: MultiMapping[str]) -> RequestTrace:
        trace = incoming_trace(headers)
        if self.spans is not None:
            self.spans.start(trace)
        return trace

    def finish(self, trace: RequestTrace, *, route: str, method: str, status: int,
               region: str | None, upstream: str | None, principal: Principal | None) -> None:
        """End the request's span (call only when `trace.span` is set)."""
        if self.spans is not None:
            self.spans.finish(trace, route=route, method=method, status=status, region=region,
                              upstream=upstream,
                              principal_kind=principal.kind if principal else None)

    async def exporting(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: the exporter runs while the application does; at stop the spans
        still queued are sent (on a thread: the export is blocking I/O)."""
        if self.config.otlp_endpoint is None:
            yield
            return
        from gateway.tracing.spans import Spans  # OpenTelemetry only when it is used

        spans = Spans(self.config)
        self.spans = spans
        log.info("tracing: spans exported to %s", spans.url)
        try:
            yield
        finally:
            self.spans = None
            await asyncio.to_thread(spans.shutdown)

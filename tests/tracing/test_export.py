"""Spans exported over OTLP/HTTP from a real gateway (its listeners, data plane on) to a
receiver on loopback: a proxied request the data plane serves and a built-in endpoint,
their ids and parents, the traceparent upstreams see, the access lines' traceId; and,
with no endpoint, the trace context alone on both request paths."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.keys import ACCESS_LOG, TRACING
from gateway.testing.support import free_port
from gateway.testing.upstream import running_upstream
from gateway.tracing.context import parse_traceparent
from tests.proxy.conftest import handed_off, in_process_gateway, proxy_config
from tests.tracing.receiver import SERVER, ReceivedSpan, running_receiver

EU = "api.eu.amity.co"
CLIENT_TRACE, CLIENT_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
OPS_TRACE, OPS_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
UNSAMPLED_TRACE = "11111111111111111111111111111111"


@asynccontextmanager
async def gateway(folder: Path, upstream: str, extra: dict[str, Any]
                  ) -> AsyncIterator[tuple[str, web.Application, io.StringIO]]:
    config = proxy_config(folder, {"eu": upstream, "sg": upstream, "us": upstream},
                          free_port(), extra)
    async with in_process_gateway(config) as (url, app):
        log = io.StringIO()
        app[ACCESS_LOG].stream = log
        yield url, app, log


async def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    """One request on a new connection (so each starts on the data plane)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s, \
            s.get(url, headers=headers) as response:
        body = await response.read()
        is_json = response.content_type == "application/json" and body.startswith(b'{"up')
        return response.status, json.loads(body) if is_json else None


def seen_upstream(echo: dict[str, Any] | None, name: str) -> list[str]:
    assert echo is not None
    return [v for k, v in echo["headers"] if k.lower() == name]


def access_lines(app: web.Application, log: io.StringIO) -> dict[str, dict[str, Any]]:
    app[ACCESS_LOG].flush()
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    return {line["requestId"]: line for line in lines}


async def test_spans_of_both_request_paths_reach_the_collector(
        tmp_path: Path) -> None:
    async with running_receiver() as receiver, running_upstream("eu") as upstream:
        tracing = {"tracing": {"otlp_endpoint": receiver.url, "service_name": "edge-test"}}
        async with gateway(tmp_path, upstream, tracing) as (url, app, log):
            assert app[TRACING].spans is not None
            _, joined = await get(f"{url}/pub/joined?x=1", {
                "Host": EU, "X-Request-Id": "dp-joined", "tracestate": "client=1",
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
            _, root = await get(f"{url}/pub/root", {"Host": EU, "X-Request-Id": "dp-root"})
            _, unsampled = await get(f"{url}/pub/unsampled", {
                "Host": EU, "X-Request-Id": "dp-unsampled",
                "traceparent": f"00-{UNSAMPLED_TRACE}-{CLIENT_SPAN}-00"})
            status, _ = await get(f"{url}/healthz", {
                "X-Request-Id": "ops", "traceparent": f"00-{OPS_TRACE}-{OPS_SPAN}-01"})
            assert status == 200
            lines = access_lines(app, log)
            assert receiver.spans == []  # batched: nothing is sent per request
        # The stop sent what was queued.
    assert handed_off(app) == 1  # /healthz: the three /pub requests were the data plane's
    assert receiver.content_types == {"application/x-protobuf"}
    spans = {span.trace_id: span for span in receiver.spans}
    assert len(receiver.spans) == 3 and UNSAMPLED_TRACE not in spans

    # The data plane's span: a child of the client's, the parent of the upstream's.
    sent = parse_traceparent(seen_upstream(joined, "traceparent")[0])
    assert sent is not None and sent.trace_id == CLIENT_TRACE and sent.sampled
    span = spans[CLIENT_TRACE]
    assert span == ReceivedSpan(
        name="public", trace_id=CLIENT_TRACE, span_id=sent.parent_id, parent_id=CLIENT_SPAN,
        kind=SERVER, status_code=0, service_name="edge-test", attributes={
            "http.request.method": "GET", "http.response.status_code": 200,
            "gateway.route": "public", "gateway.region": "eu", "gateway.upstream": upstream})
    assert seen_upstream(joined, "tracestate") == ["client=1"]
    assert lines["dp-joined"]["traceId"] == CLIENT_TRACE

    # A trace the gateway started: a root span, the same trace id upstream and in the log.
    started = parse_traceparent(seen_upstream(root, "traceparent")[0])
    assert started is not None and started.sampled  # sample_ratio 1.0
    span = spans[started.trace_id]
    assert span.parent_id == "" and span.span_id == started.parent_id
    assert lines["dp-root"]["traceId"] == started.trace_id

    # The client did not sample its trace: nothing recorded, and upstreams are told so.
    not_sampled = parse_traceparent(seen_upstream(unsampled, "traceparent")[0])
    assert not_sampled is not None and not not_sampled.sampled
    assert not_sampled.trace_id == UNSAMPLED_TRACE == lines["dp-unsampled"]["traceId"]

    # A built-in endpoint, answered by the aiohttp application.
    span = spans[OPS_TRACE]
    assert (span.name, span.parent_id, span.kind) == ("healthz", OPS_SPAN, SERVER)
    assert span.attributes["gateway.route"] == "healthz"
    assert span.attributes["http.response.status_code"] == 200
    assert "gateway.upstream" not in span.attributes
    assert lines["ops"]["traceId"] == OPS_TRACE


async def test_sample_ratio_zero_records_no_trace_the_gateway_starts(tmp_path: Path) -> None:
    async with running_receiver() as receiver, running_upstream("eu") as upstream:
        tracing = {"tracing": {"otlp_endpoint": receiver.url + "/v1/traces",
                               "sample_ratio": 0}}
        async with gateway(tmp_path, upstream, tracing) as (url, _app, _log):
            _, echo = await get(f"{url}/pub/x", {"Host": EU})
            await get(f"{url}/pub/y", {
                "Host": EU, "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    started = parse_traceparent(seen_upstream(echo, "traceparent")[0])
    assert started is not None and not started.sampled
    assert [span.trace_id for span in receiver.spans] == [CLIENT_TRACE]  # the caller decided


@pytest.mark.parametrize("data_plane", [True, False], ids=["data-plane", "aiohttp"])
async def test_without_an_endpoint_only_the_trace_context_is_handled(
        tmp_path: Path, data_plane: bool) -> None:
    async with running_upstream("eu") as upstream:
        extra = {"server": {"https": None, "data_plane": data_plane,
                            "http": {"host": "127.0.0.1", "port": free_port()}}}
        async with gateway(tmp_path, upstream, extra) as (url, app, log):
            assert app[TRACING].spans is None
            _, echo = await get(f"{url}/pub/kept", {
                "Host": EU, "X-Request-Id": "kept", "tracestate": "client=1",
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
            _, dropped = await get(f"{url}/pub/dropped", {
                "Host": EU, "X-Request-Id": "dropped", "tracestate": "client=1",
                "traceparent": f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01"})
            await get(f"{url}/healthz", {"X-Request-Id": "ops"})
            lines = access_lines(app, log)
    # With the data plane, only /healthz was handed to aiohttp; without, nothing counts.
    assert handed_off(app) == (1 if data_plane else 0)
    sent = parse_traceparent(seen_upstream(echo, "traceparent")[0])
    assert sent is not None and sent.trace_id == CLIENT_TRACE and sent.sampled
    assert sent.parent_id != CLIENT_SPAN
    assert seen_upstream(echo, "tracestate") == ["client=1"]
    new = parse_traceparent(seen_upstream(dropped, "traceparent")[0])
    assert new is not None and new.trace_id != CLIENT_TRACE.lower()
    assert seen_upstream(dropped, "tracestate") == []
    assert lines["kept"]["traceId"] == CLIENT_TRACE
    assert lines["dropped"]["traceId"] == new.trace_id
    assert len(lines["ops"]["traceId"]) == 32

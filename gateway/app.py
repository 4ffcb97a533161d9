"""build_app(config): wiring only. Long-lived resources are opened in cleanup_ctx."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.api import (
    admin_tokens,
    admins,
    audit,
    certificates,
    console,
    console_ui,
    network,
    notifications,
    oauth,
    ops,
    secure,
    sessions,
    webhooks,
)
from gateway.auth.lifetimes import Lifetimes
from gateway.auth.loader import load_token_service
from gateway.auth.login_limits import login_limits
from gateway.auth.ratelimit import LoginLimiter
from gateway.auth.tokens import TokenService
from gateway.config import Config
from gateway.errors import error_middleware
from gateway.keys import (
    ACCESS_LOG,
    AUTH_STATE,
    CA,
    CLIENT,
    FEED,
    LIVE_SOCKETS,
    LOGIN_LIMITER,
    METRICS,
    PUSH_HEADERS,
    RUNTIME,
    STORE,
    TOKENS,
    TRACING,
    UPSTREAMS,
)
from gateway.metrics import FLUSH_INTERVAL, Metrics
from gateway.middleware import cors_headers, front_middleware, gate_middleware
from gateway.notices.service import notices
from gateway.proxy import handler as proxy
from gateway.proxy.live import LiveSockets
from gateway.proxy.upstream_client import UpstreamPool
from gateway.push import PushHeaders
from gateway.runtime import Runtime, load_settings
from gateway.store import Clock, FeedTailer, open_store
from gateway.tracing.tracer import Tracing

SERVER_HEADER = "gateway"
# Every built-in endpoint: compiled with the policies into the one route table.
ENDPOINTS = (
    *ops.ENDPOINTS, *sessions.ENDPOINTS, *admin_tokens.ENDPOINTS, *notifications.ENDPOINTS,
    *network.ENDPOINTS, *console.ENDPOINTS, *console_ui.ENDPOINTS, *admins.ENDPOINTS,
    *audit.ENDPOINTS, *certificates.ENDPOINTS, *secure.ENDPOINTS, *oauth.ENDPOINTS,
    *webhooks.ENDPOINTS,
)
PRUNE_INTERVAL = 600.0

log = logging.getLogger("gateway.app")


def build_app(
    config: Config, *, clock: Clock = time.time, metrics_dir: Path | None = None
) -> web.Application:
    """`metrics_dir`: with several workers, the directory they share their metrics in
    (gateway.metrics); without it, this application's metrics are its own."""
    app = web.Application(
        middlewares=[front_middleware, error_middleware, gate_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    app[RUNTIME] = Runtime(load_settings(config, ENDPOINTS), ENDPOINTS)
    app[METRICS] = Metrics(metrics_dir)
    app[LOGIN_LIMITER] = LoginLimiter(config.limits, clock)
    app[ACCESS_LOG] = AccessLog(enabled=config.server.access_log)
    app[LIVE_SOCKETS] = LiveSockets(clock)
    app[TRACING] = Tracing(config.tracing)
    app.cleanup_ctx.append(app[TRACING].exporting)  # first in, so the last spans out
    app.cleanup_ctx.append(_access_log_flusher)
    app.cleanup_ctx.append(_store_and_feed(config, clock))
    if app[METRICS].shared:
        app.cleanup_ctx.append(_metrics_writer)  # reads the feed: after it, stops before it
    app.cleanup_ctx.append(login_limits(config))  # counters in the store (or Redis)
    app.cleanup_ctx.append(_upstream_client)
    app.cleanup_ctx.append(notices)  # webhook deliveries and scan: needs the store
    app.on_response_prepare.append(_server_header)
    app.on_response_prepare.append(cors_headers)
    console_ui.setup(app)
    proxy.add_routes(app)
    return app


def _store_and_feed(
    config: Config, clock: Clock
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        app[CA] = await certificates.load_ca(config)
        store = await open_store(config)
        store.clock = clock
        # Read the feed position first: entries after it are replayed over the snapshot
        # the token service loads next (applying one twice is harmless).
        feed = FeedTailer(
            store,
            poll_interval=config.store.feed_poll_interval,
            start_seq=await store.latest_seq(),
        )
        runtime = app[RUNTIME]
        tokens = await load_token_service(  # lifetime bounds follow config reloads
            config, store, clock, lambda: Lifetimes.from_config(runtime.current.config.tokens)
        )
        reloads: set[asyncio.Task[None]] = set()

        def reload_keys() -> None:
            task = asyncio.create_task(tokens.ring.load(), name="gateway-keys-reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        tokens.state.on_keys_rotated = reload_keys
        feed.subscribe(tokens.state.apply)
        feed.subscribe(app[LIVE_SOCKETS].apply)  # after the state: a revocation ends sockets
        push = PushHeaders(store)
        await push.load_all()
        feed.subscribe(push.apply)
        app[PUSH_HEADERS] = push
        app[STORE] = store
        app[FEED] = feed
        app[TOKENS] = tokens
        app[AUTH_STATE] = tokens.state
        await feed.start()
        pruning = asyncio.create_task(_prune_forever(tokens), name="gateway-revocation-prune")
        yield
        pruning.cancel()
        await asyncio.wait([pruning, *reloads])
        await feed.stop()
        tokens.cache.clear()
        await store.close()

    return context


async def _prune_forever(tokens: TokenService) -> None:
    while True:
        await asyncio.sleep(PRUNE_INTERVAL)
        tokens.state.prune()
        tokens.cache.prune()


async def _metrics_writer(app: web.Application) -> AsyncIterator[None]:
    """Several workers: this worker's metrics written for the others every
    FLUSH_INTERVAL, and a last time once it has stopped serving."""
    metrics = app[METRICS]

    async def write_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            ops.sample_gauges(app)
            try:
                metrics.flush()
            except OSError:  # a full disk, say: try again next time
                log.exception("cannot write this worker's metrics")

    ops.sample_gauges(app)
    metrics.flush()
    task = asyncio.create_task(write_forever(), name="gateway-metrics-writer")
    yield
    task.cancel()
    await asyncio.wait([task])
    ops.sample_gauges(app)
    metrics.close()


async def _access_log_flusher(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[ACCESS_LOG].run(), name="gateway-access-log")
    yield
    task.cancel()
    await asyncio.wait([task])


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    """One pooled client for every upstream: keep-alive, no cookies, bodies untouched."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies must never reach another
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
    ) as session:
        app[CLIENT] = session
        app[UPSTREAMS] = UpstreamPool(
            hold_writes_from=app[RUNTIME].current.config.server.hold_writes_from)
        yield
        app[UPSTREAMS].close()


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # Don't advertise the framework and its version to every caller.
    if "Server" not in response.headers or response.headers["Server"].startswith("Python/"):
        response.headers["Server"] = SERVER_HEADER

"""build_app(config): wiring only. Long-lived resources are opened in cleanup_ctx."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway.api import ops
from gateway.config import Config
from gateway.errors import error_middleware
from gateway.keys import FEED, METRICS, RUNTIME, STORE
from gateway.metrics import Metrics
from gateway.runtime import Runtime, load_settings
from gateway.store import Clock, FeedTailer, open_store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(config: Config, *, clock: Clock = time.time) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    app[RUNTIME] = Runtime(load_settings(config))
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_store_and_feed(config, clock))
    ops.add_routes(app)
    return app


def _store_and_feed(
    config: Config, clock: Clock
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        store = await open_store(config)
        store.clock = clock
        feed = FeedTailer(
            store,
            poll_interval=config.store.feed_poll_interval,
            start_seq=await store.latest_seq(),
        )
        app[STORE] = store
        app[FEED] = feed
        await feed.start()
        yield
        await feed.stop()
        await store.close()

    return context


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.name or "unmatched"
    metrics = request.app[METRICS]
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response

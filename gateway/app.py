"""build_app(config): wiring only. Long-lived resources are opened in cleanup_ctx."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway.api import ops
from gateway.config import Config
from gateway.errors import error_middleware
from gateway.keys import CLIENT, FEED, METRICS, RUNTIME, STORE
from gateway.metrics import Metrics
from gateway.middleware import front_middleware, gate_middleware
from gateway.proxy import handler as proxy
from gateway.runtime import Runtime, load_settings
from gateway.store import Clock, FeedTailer, open_store

SERVER_HEADER = "gateway"


def build_app(config: Config, *, clock: Clock = time.time) -> web.Application:
    app = web.Application(
        middlewares=[front_middleware, error_middleware, gate_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    app[RUNTIME] = Runtime(load_settings(config))
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_store_and_feed(config, clock))
    app.cleanup_ctx.append(_upstream_client)
    app.on_response_prepare.append(_server_header)
    ops.add_routes(app)
    proxy.add_routes(app)
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
        yield


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # Don't advertise the framework and its version to every caller.
    if "Server" not in response.headers or response.headers["Server"].startswith("Python/"):
        response.headers["Server"] = SERVER_HEADER

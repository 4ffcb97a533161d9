"""Operations endpoints: /healthz (alive), /readyz (able to serve), /metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.api.routes import endpoint
from gateway.errors import error_response
from gateway.keys import FEED, METRICS, RUNTIME, STORE, TOKENS
from gateway.metrics import PROMETHEUS_CONTENT_TYPE
from gateway.store import StoreUnavailable

STORE_PING_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    config = app[RUNTIME].current.config
    feed = app[FEED]
    problems: list[str] = []
    if app[RUNTIME].draining:
        problems.append("draining: shutting down")
    try:
        await asyncio.wait_for(app[STORE].ping(), STORE_PING_TIMEOUT)
    except (StoreUnavailable, TimeoutError) as exc:
        problems.append(f"store unreachable: {exc or 'timeout'}")
    staleness = feed.staleness()
    if staleness > config.store.feed_max_lag:
        problems.append(
            f"change feed {staleness:.1f}s behind (bound {config.store.feed_max_lag:.1f}s)"
        )
    if staleness > config.store.max_staleness:
        problems.append(
            f"token checks refused: state stale past {config.store.max_staleness:.0f}s"
        )
    if not app[TOKENS].ring.loaded:
        problems.append("no signing key loaded")
    if problems:
        return error_response(503, "; ".join(problems))
    return web.json_response(
        {"status": "ready", "feedSeq": feed.last_seq, "feedStalenessSeconds": round(staleness, 3)}
    )


async def metrics(request: web.Request) -> web.Response:
    sample_gauges(request.app)
    return web.Response(body=request.app[METRICS].render(),
                        headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


def sample_gauges(app: web.Application) -> None:
    """The gauges read from this worker's state: before a scrape, and (several workers)
    before each periodic write for the others."""
    feed = app[FEED]
    app[METRICS].set_feed(feed.staleness(), feed.last_seq, feed.last_entry_delay)


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[TOKENS].ring.jwks(),
                             headers={"Cache-Control": "public, max-age=60"})


ENDPOINTS = (
    endpoint("GET", "/.well-known/jwks.json", jwks),
    endpoint("GET", "/healthz", healthz),
    endpoint("GET", "/readyz", readyz),
    endpoint("GET", "/metrics", metrics),
)

"""Start-up and shut-down of the console login limits (after the store is open)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.auth.login_counters import Counters, RedisCounters, StoreCounters
from gateway.config import Config
from gateway.keys import LOGIN_LIMITER, STORE


def login_limits(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        limits = config.limits
        counters: Counters = (
            RedisCounters(limits.redis_url, limits.redis_namespace) if limits.redis_url
            else StoreCounters(app[STORE])
        )
        app[LOGIN_LIMITER].bind(counters)
        yield
        await app[LOGIN_LIMITER].close()

    return context

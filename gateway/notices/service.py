"""The notices of one gateway process: its delivery worker and its scan, started and
stopped with the application (a cleanup context, after the store's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.config import NoticesConfig
from gateway.keys import NOTICES, RUNTIME, STORE, TOKENS
from gateway.notices.delivery import MAX_IN_FLIGHT, Deliveries
from gateway.notices.scan import scan_forever
from gateway.notices.targets import PublicResolver


async def notices(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]

    def settings() -> NoticesConfig:  # read at every use: SIGHUP reloads apply
        return runtime.current.config.notices

    # A client of its own, not the upstreams' one: its resolver refuses private
    # addresses (gateway/notices/targets.py), which upstreams usually are.
    connector = aiohttp.TCPConnector(
        resolver=PublicResolver(lambda: settings().allow_private_targets),
        limit=MAX_IN_FLIGHT, ttl_dns_cache=None, use_dns_cache=False,
    )
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=settings().delivery_timeout),
    ) as session:
        worker = Deliveries(app[STORE], app[TOKENS].sealer, session, settings)
        app[NOTICES] = worker
        scan_stopped = asyncio.Event()
        tasks = [
            asyncio.create_task(worker.run(), name="gateway-notices-deliver"),
            asyncio.create_task(scan_forever(app[STORE], settings, worker.wake, scan_stopped),
                                name="gateway-notices-scan"),
        ]
        yield
        worker.stop()
        scan_stopped.set()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)

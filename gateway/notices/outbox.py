"""`noticed(request, build)`: around the write a handler makes, its notices commit with it.

    async with audited(request, "server_key.generate"), \\
            noticed(request, kinds.server_key_generated(principal)):
        await store.set_server_key_hash(...)

The store inserts the outbox rows just before the write's transaction commits
(gateway/store/outbox.py); once the block is done this process's worker is woken, so a
notice leaves at once rather than at the next poll.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from gateway.keys import NOTICES, STORE
from gateway.store.outbox import PENDING_NOTICES, Build, PendingNotices


@asynccontextmanager
async def noticed(request: web.Request, build: Build) -> AsyncIterator[None]:
    pending = PendingNotices(build, request.app[STORE].clock())
    token = PENDING_NOTICES.set((*PENDING_NOTICES.get(), pending))
    try:
        yield
    finally:
        PENDING_NOTICES.reset(token)
    worker = request.app.get(NOTICES)
    if pending.queued and worker is not None:
        worker.wake()

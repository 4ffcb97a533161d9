"""The data plane of one process: its listeners' connections, their caps, and what they
read from the running application (settings snapshot, token service, upstream pool)."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.auth.gate import stale_state
from gateway.auth.state import AuthState
from gateway.auth.tokens import TokenService
from gateway.dataplane.admission import RouteCache
from gateway.dataplane.connection import DataPlaneConnection
from gateway.keys import (
    ACCESS_LOG,
    AUTH_STATE,
    CLIENT,
    FEED,
    METRICS,
    PUSH_HEADERS,
    RUNTIME,
    TOKENS,
    TRACING,
    UPSTREAMS,
)
from gateway.metrics import Metrics
from gateway.proxy.upstream_client import UpstreamPool
from gateway.proxy.write_batch import WriteBatch
from gateway.runtime import Settings
from gateway.tracing.tracer import Tracing

log = logging.getLogger("gateway.dataplane")


class DataPlane:
    """Connections accepted by the data plane's listeners, until handed off or closed."""

    def __init__(self, app: web.Application, aiohttp_protocol: Callable[[], asyncio.Protocol]
                 ) -> None:
        self._app = app
        self.aiohttp_protocol = aiohttp_protocol
        self._connections: set[DataPlaneConnection] = set()
        self._per_address: collections.Counter[str | None] = collections.Counter()
        self.routes = RouteCache()
        self._bound = False

    def protocol(self) -> DataPlaneConnection:
        """The protocol factory for `loop.create_server`."""
        if not self._bound:
            self._bind()
        return DataPlaneConnection(self)

    def _bind(self) -> None:
        """Look up, once, what the started application holds for its whole life: an
        aiohttp application lookup costs more than a proxied request can spare."""
        app = self._app
        self._runtime = app[RUNTIME]
        self._tokens = app[TOKENS]
        self._auth_state = app[AUTH_STATE]
        self._feed = app[FEED]
        self._upstreams = app[UPSTREAMS]
        self._client = app[CLIENT]
        self._metrics = app[METRICS]
        self._access_log = app[ACCESS_LOG]
        self._tracing = app[TRACING]
        self._push = app[PUSH_HEADERS]
        self._bound = True

    def __len__(self) -> int:
        return len(self._connections)

    # -- what connections read from the application ---------------------------------------

    def settings(self) -> Settings:
        return self._runtime.current

    def tokens(self) -> TokenService:
        return self._tokens

    def auth_state(self) -> AuthState:
        return self._auth_state

    def stale(self) -> str | None:
        bound = self.settings().config.store.max_staleness
        return stale_state(self._feed.staleness(), bound)

    def upstreams(self) -> UpstreamPool:
        return self._upstreams

    def writes(self) -> WriteBatch:
        return self._upstreams.writes

    def client(self) -> aiohttp.ClientSession:
        return self._client

    def metrics(self) -> Metrics:
        return self._metrics

    def access_log(self) -> AccessLog:
        return self._access_log

    def tracing(self) -> Tracing:
        return self._tracing

    def push_value(self, network_id: str) -> str:
        return self._push.value(network_id)

    # -- connection caps ----------------------------------------------------------------

    def admit_connection(self, connection: DataPlaneConnection) -> bool:
        """Whether a new connection fits `server.max_connections` (all of this process)
        and `server.max_connections_per_address`; counted when it does."""
        server = self.settings().config.server
        if len(self._connections) >= server.max_connections or (
                self._per_address[connection.peer] >= server.max_connections_per_address):
            log.warning("connection from %s refused: over the connection caps",
                        connection.peer)
            return False
        self._connections.add(connection)
        self._per_address[connection.peer] += 1
        return True

    def forget(self, connection: DataPlaneConnection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            self._per_address[connection.peer] -= 1
            if self._per_address[connection.peer] <= 0:
                del self._per_address[connection.peer]

    async def shutdown(self, grace: float) -> None:
        """Close idle connections now, let requests in flight finish within `grace` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._connections:
            busy = [c for c in list(self._connections) if not c.close_when_idle()]
            if not busy or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for connection in list(self._connections):
            connection.abort()

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

    def protocol(self) -> DataPlaneConnection:
        """The protocol factory for `loop.create_server`."""
        return DataPlaneConnection(self)

    def __len__(self) -> int:
        return len(self._connections)

    # -- what connections read from the application ---------------------------------------

    def settings(self) -> Settings:
        return self._app[RUNTIME].current

    def tokens(self) -> TokenService:
        return self._app[TOKENS]

    def auth_state(self) -> AuthState:
        return self._app[AUTH_STATE]

    def stale(self) -> str | None:
        bound = self.settings().config.store.max_staleness
        return stale_state(self._app[FEED].staleness(), bound)

    def upstreams(self) -> UpstreamPool:
        return self._app[UPSTREAMS]

    def client(self) -> aiohttp.ClientSession:
        return self._app[CLIENT]

    def metrics(self) -> Metrics:
        return self._app[METRICS]

    def access_log(self) -> AccessLog:
        return self._app[ACCESS_LOG]

    def tracing(self) -> Tracing:
        return self._app[TRACING]

    def push_value(self, network_id: str) -> str:
        return self._app[PUSH_HEADERS].value(network_id)

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

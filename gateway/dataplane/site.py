"""A listener whose connections start on the data plane: an aiohttp site, so the
runner starts, stops and drains it like any other, but with its own protocol factory."""

from __future__ import annotations

import asyncio
import socket
import ssl

from aiohttp import web

from gateway.dataplane.plane import DataPlane


class DataPlaneSite(web.BaseSite):
    def __init__(self, runner: web.BaseRunner, plane: DataPlane, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False,
                 backlog: int = 4096, shutdown_timeout: float = 30.0) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._plane = plane
        self._host = host
        self._port = port
        self._tls = ssl_context
        self._reuse_port = reuse_port
        self._listen_backlog = backlog
        self._shutdown_timeout = shutdown_timeout
        self._listener: asyncio.Server | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        if self._listener is not None and self._listener.sockets:
            return int(self._listener.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._plane.protocol, self._host, self._port, ssl=self._tls,
            backlog=self._listen_backlog, reuse_address=True,
            reuse_port=self._reuse_port or None,
            family=socket.AF_INET6 if ":" in self._host else socket.AF_UNSPEC,
        )

    async def stop(self) -> None:
        """Stop accepting, then let the data plane's requests in flight finish."""
        if self._listener is not None:
            self._listener.close()
        await self._plane.shutdown(self._shutdown_timeout)
        await super().stop()

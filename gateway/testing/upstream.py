"""A real upstream HTTP server for the proxy tests, on loopback."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import WSMsgType, web

PATTERN = bytes(range(256)) * 256  # 64 KiB, repeated for downloads
WS_CLOSE_CODES = web.AppKey("ws_close_codes", list[int | None])


def pattern_bytes(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def upstream_app(name: str) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        return web.json_response(
            {
                "upstream": name,
                "method": request.method,
                "path": request.raw_path.partition("?")[0],
                "query": request.query_string,
                "headers": [[k, v] for k, v in request.headers.items()],
                "sha256": digest.hexdigest(),
                "size": size,
            },
            headers={"X-Upstream": name, "Connection": "keep-alive, X-Secret-Hop",
                     "X-Secret-Hop": "must not reach the client", "Keep-Alive": "timeout=5"},
        )

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        response = web.StreamResponse(headers={"X-Upstream": name})
        if "length" in request.query:
            response.content_length = size
        await response.prepare(request)
        sent = 0
        while sent < size:
            chunk = PATTERN[: min(len(PATTERN), size - sent)]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "5")))
        return web.json_response({"upstream": name, "slow": True})

    async def reset(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000000"})
        await response.prepare(request)
        await response.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.abort()
        return response

    async def hangup(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()  # no answer at all
        return web.Response()

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("mqtt", "chat"), autoping=True)
        await ws.prepare(request)
        await ws.send_str(f"hello from {name}")
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                if message.data.startswith("close:"):
                    await ws.close(code=int(message.data[6:]), message=b"bye")
                    break
                await ws.send_str(f"echo:{message.data}")
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        request.app[WS_CLOSE_CODES].append(ws.close_code)
        return ws

    async def close_codes(request: web.Request) -> web.Response:
        return web.json_response(request.app[WS_CLOSE_CODES])

    app = web.Application(client_max_size=1 << 31)
    app[WS_CLOSE_CODES] = []
    app.router.add_get("/pub/ws-close-codes", close_codes)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/pub/ws", websocket)
    app.router.add_get("/api/v3/ws-echo", websocket)  # a WebSocket behind the /api/** rule
    app.router.add_get("/pub/download", download)
    app.router.add_get("/pub/slow", slow)
    app.router.add_get("/pub/reset", reset)
    app.router.add_get("/pub/hangup", hangup)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@asynccontextmanager
async def running_upstream(name: str, port: int = 0) -> AsyncIterator[str]:
    runner = web.AppRunner(upstream_app(name), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    assert runner.addresses
    host, bound = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()

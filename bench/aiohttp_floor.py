"""The least an aiohttp proxy can do: a reference row for the gateway's benchmark.

Same stack as the gateway (aiohttp server, one pooled aiohttp client, uvloop), none of
its work: no policies, header rules, request ids, metrics or logs. Each GET is sent to
the upstream and the body returned with its status and content type. What it reaches
is about the ceiling of any aiohttp-based proxy on the same core.

    .venv/bin/python bench/aiohttp_floor.py --port 8081 --upstream http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def _client(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        app[SESSION] = session
        yield


async def relay(request: web.Request) -> web.Response:
    url = request.app[UPSTREAM] + request.path_qs
    async with request.app[SESSION].get(url, allow_redirects=False) as upstream:
        body = await upstream.read()
        return web.Response(
            status=upstream.status,
            body=body,
            headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")},
        )


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_client)
    app.router.add_get("/{tail:.*}", relay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8080")
    args = parser.parse_args()
    web.run_app(
        build_app(args.upstream),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=2.0,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()

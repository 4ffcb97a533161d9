"""A gateway in this process (its real runner and middlewares) in front of real upstreams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app import build_app
from gateway.bootstrap import init_files
from gateway.config import load_config
from gateway.dataplane.connection import HANDOFF_REASONS
from gateway.keys import METRICS, UPSTREAMS
from gateway.server import listener_sites, make_runner
from gateway.testing.support import free_port, write_config
from gateway.testing.upstream import running_upstream

PROXY_POLICY = """
rules:
  - {name: healthz, match: {path: /healthz, methods: [GET]}, auth: public}
  - {name: metrics, match: {path: /metrics, methods: [GET]}, auth: public}
  - {name: denied, match: {path: "/pub/secret/**"}, auth: deny}
  - {name: public, match: {path: "/pub/**"}, auth: public}
  - {name: ws, match: {path: /ws}, auth: public}
  - {name: api, match: {path: "/api/**"}, auth: any_token}
"""


@dataclass
class ProxySetup:
    url: str
    config_path: Path
    upstreams: dict[str, str]
    dead_port: int
    app: web.Application


def proxy_config(folder: Path, upstreams: dict[str, str], dead_port: int,
                 extra: dict[str, Any] | None = None) -> Path:
    policy = folder / "proxy-policy.yaml"
    policy.write_text(PROXY_POLICY)
    overrides: dict[str, Any] = {
        "regions": {
            "default": "sg",
            "eu": {"hosts": ["api.eu.amity.co"], "upstreams": [upstreams["eu"]]},
            # The first sg upstream refuses connections: requests fail over to the second.
            "sg": {"hosts": ["api.sg.amity.co", "api.amity.co"],
                   "upstreams": [f"http://127.0.0.1:{dead_port}", upstreams["sg"]]},
            "us": {"hosts": ["api.us.amity.co"], "upstreams": [upstreams["us"]],
                   "read_timeout": "1s"},
        },
        "policies": [str(policy)],
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
        "proxy": {"read_timeout": "2s", "connect_timeout": "2s",
                  "max_body_bytes": 64 * 1024 * 1024},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(overrides.get(key), dict):
            overrides[key] = {**overrides[key], **value}
        else:
            overrides[key] = value
    return write_config(folder, overrides)


@asynccontextmanager
async def in_process_gateway(
    config_path: Path, clock: Callable[[], float] = time.time,
    hold_writes_from: int | None = 1,
) -> AsyncIterator[tuple[str, web.Application]]:
    """The gateway on its real listeners in this process: its URL and application.

    Its data plane holds every write to the end of the loop iteration from
    `hold_writes_from` exchanges in flight (gateway/proxy/write_batch.py). Served
    alone, as most tests' requests are, the default BUSY would never hold one: from 1,
    every test here also checks the order, closes and hand-offs of held writes. The
    gateways the tests start as processes keep the default; None keeps the config's
    `server.hold_writes_from`.
    """
    config = load_config(config_path, environ={})
    await asyncio.to_thread(init_files, config)
    app = build_app(config, clock=clock)
    runner = make_runner(app, config)
    await runner.setup()
    if hold_writes_from is not None:
        app[UPSTREAMS].writes.busy = hold_writes_from
    assert config.server.http is not None
    # The real listeners: plain HTTP, and HTTPS (asking for client certificates) if set.
    for site in await listener_sites(runner, config, reuse_port=False):
        await site.start()
    try:
        yield f"http://127.0.0.1:{config.server.http.port}", app
    finally:
        await runner.cleanup()


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[ProxySetup]:
    async with (
        running_upstream("eu") as eu,
        running_upstream("sg") as sg,
        running_upstream("us") as us,
    ):
        upstreams = {"eu": eu, "sg": sg, "us": us}
        dead_port = free_port()
        config_path = proxy_config(tmp_path, upstreams, dead_port)
        async with in_process_gateway(config_path) as (url, app):
            yield ProxySetup(url, config_path, upstreams, dead_port, app)


def handed_off(app: web.Application) -> int:
    """Connections the gateway's data plane has handed to aiohttp so far, for any reason
    (its metrics, not a patched method: compiled classes cannot be patched)."""
    return sum(app[METRICS].handoffs(reason) for reason in HANDOFF_REASONS)

"""Helpers for the SDK tests: run one harness scenario, a gateway with a recording upstream."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.support import write_config
from tests.sdk.upstream import Recorded, running_sdk_upstream

SDK_DIR = Path(__file__).resolve().parent
HARNESS = SDK_DIR / "harness.cjs"
RESULT_PREFIX = "SDK-RESULT "
ADMIN_PASSWORD = b"sdk-e2e-password\n"


@dataclass
class SdkRun:
    """What one harness run reported (see harness.cjs), plus its stderr for diagnosis."""

    raw: dict[str, Any]
    stderr: str
    returncode: int | None

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def step(self, name: str) -> dict[str, Any]:
        for item in self.raw["steps"]:
            if item["name"] == name:
                return dict(item.get("data") or {})
        raise AssertionError(f"no step {name!r} in {self.describe()}")

    def has_step(self, name: str) -> bool:
        return any(item["name"] == name for item in self.raw["steps"])

    def requests(self, method: str, path: str) -> list[dict[str, Any]]:
        """The HTTP requests the SDK sent (as its axios adapter saw them), by method and path."""
        return [r for r in self.raw["requests"]
                if r["method"] == method and r["url"].split("?")[0].endswith(path)]

    def uncaught(self) -> list[dict[str, Any]]:
        return [dict(s.get("data") or {}) for s in self.raw["steps"]
                if s["name"] in ("uncaughtException", "unhandledRejection")]

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-40:])
        return f"{json.dumps(self.raw, indent=1)[:12000]}\n--- node stderr (tail) ---\n{tail}"


async def run_sdk(sdk_dir: Path, scenario: str, params: dict[str, Any],
                  env: dict[str, str | None] | None = None) -> SdkRun:
    """Run one harness scenario; the harness bounds itself, this bounds the harness.

    Proxy variables are dropped (axios would honour them, and only loopback is allowed);
    `env` adds variables, or removes them where the value is None.
    """
    timeout_ms = int(params.setdefault("timeoutMs", 20000))
    child_env = {k: v for k, v in os.environ.items()
                 if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    proc = await asyncio.create_subprocess_exec(
        "node", str(HARNESS), scenario, json.dumps(params), cwd=sdk_dir, env=child_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_ms / 1000 + 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"node harness {scenario} hung past its own bound:\n{err.decode()[-4000:]}"
        ) from None
    stderr = err.decode(errors="replace")
    lines = [line for line in out.decode(errors="replace").splitlines()
             if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise AssertionError(f"node harness {scenario} printed no result (exit "
                             f"{proc.returncode}):\n{stderr[-4000:]}")
    return SdkRun(json.loads(lines[-1][len(RESULT_PREFIX):]), stderr, proc.returncode)


@dataclass
class SdkGateway:
    """A `gateway serve` process and the loopback upstream behind it, plus admin helpers."""

    gateway: GatewayProcess
    config: Path
    upstream: Recorded
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.gateway.https_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    @property
    def ca(self) -> Path:
        return self.config.parent / "certs" / "ca.pem"

    async def cli(self, *args: str, stdin: bytes | None = None) -> dict[str, Any]:
        code, out, err = await run_cli(*args[:2], "--config", str(self.config), *args[2:],
                                       stdin=stdin)
        assert code == 0, err
        result: dict[str, Any] = json.loads(out)
        return result

    async def network(self, *, secure: bool = False) -> dict[str, Any]:
        extra = ("--secure",) if secure else ()
        return await self.cli("network", "create", "--name", "sdk-e2e", *extra)

    async def admin_token(self, network: dict[str, Any], username: str = "sdk-admin") -> str:
        """A console user with the admin role in `network`, and an admin token for it."""
        nid = network["networkId"]
        await self.cli("admin", "create", "--network", nid, "--username", username,
                       "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
        token = await self.cli("admin", "token", "--network", nid, "--username", username)
        return str(token["adminToken"])

    async def call(self, method: str, path: str, *, token: str | None = None,
                   headers: dict[str, str] | None = None,
                   json_body: Any = None) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.url + path, headers=sent,
                                        json=json_body) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def server_key(self, admin_token: str) -> str:
        status, body = await self.call("POST", "/api/v3/networks/server-key", token=admin_token)
        assert status == 200, body
        return str(body["serverKey"])

    async def auth_token(self, server_key: str, user_id: str) -> str:
        status, body = await self.call("GET", f"/api/v3/authentication/token?userId={user_id}",
                                       headers={"x-server-key": server_key})
        assert status == 200 and isinstance(body, str), body
        return body

    def sdk_params(self, network: dict[str, Any], user_id: str, *, https: bool = False,
                   **extra: Any) -> dict[str, Any]:
        base = self.https_url if https else self.url
        host = base.split("://", 1)[1]
        return {
            "apiKey": network["apiKey"],
            "region": "sg",
            "http": base,
            "mqtt": f"{'wss' if https else 'ws'}://{host}/mqtt",
            "userId": user_id,
            "displayName": f"{user_id} (SDK e2e)",
            **extra,
        }


@asynccontextmanager
async def sdk_gateway_running(tmp_path: Path,
                              overrides: dict[str, Any] | None = None) -> AsyncIterator[SdkGateway]:
    """`gateway serve` (HTTP and HTTPS on free ports, SQLite in tmp_path) whose only region
    forwards to a fresh recording upstream; `overrides` merge into the config's sections."""
    async with running_sdk_upstream() as (upstream_url, recorded):
        settings: dict[str, Any] = {
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream_url]}},
            "proxy": {"connect_timeout": "2s", "read_timeout": "10s"},
            "server": {"shutdown_timeout": "2s"},
        }
        for section, values in (overrides or {}).items():
            settings.setdefault(section, {}).update(values)
        config = write_config(tmp_path, settings)
        async with GatewayProcess(config) as gateway, aiohttp.ClientSession() as session:
            yield SdkGateway(gateway, config, recorded, session)

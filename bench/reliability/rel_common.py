"""What the reliability scripts share: gateway child processes, configs, a loopback upstream.

Everything listens on and talks to 127.0.0.1 only. Every child process is registered,
killed when the script ends (normally, by an exception, by Ctrl-C or SIGTERM) and, on
Linux, also killed by the kernel should the script itself die (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from aiohttp import web

from gateway.testing import support
from gateway.testing.process import die_with_parent, gateway_command
from gateway.testing.support import free_port as free_port  # re-exported for the scripts

REPO = Path(__file__).resolve().parents[2]

POLICIES = REPO / "policies" / "default.yaml"
DEFAULT_PG_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
LOOPBACK = "127.0.0.1"
START_LIMIT = 30.0


def write_config(folder: Path, overrides: dict[str, Any], name: str = "config.yaml") -> Path:
    """tests.support.write_config without HTTPS: HTTP on a free loopback port, the repo's
    policies, a SQLite store in the folder unless `overrides` says otherwise. Relative
    paths (store, CA, keys) resolve against the folder, so two configs in one folder
    share the store, keys and CA."""
    server = {"https": None, "shutdown_timeout": "5s", **overrides.get("server", {})}
    return support.write_config(folder, {**overrides, "server": server}, name=name)


class Children:
    """Every child process the script started, so that none outlives it."""

    def __init__(self) -> None:
        self._procs: set[asyncio.subprocess.Process] = set()

    def add(self, proc: asyncio.subprocess.Process) -> None:
        self._procs.add(proc)

    def discard(self, proc: asyncio.subprocess.Process) -> None:
        self._procs.discard(proc)

    async def kill_all(self) -> None:
        for proc in list(self._procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 10)
        self._procs.clear()


CHILDREN = Children()


async def spawn(args: Sequence[str], *, env: dict[str, str] | None = None,
                stdin: int | None = None, stdout: Any = None, stderr: Any = None
                ) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=REPO, env={**os.environ, **(env or {})}, stdin=stdin, stdout=stdout,
        stderr=stderr, preexec_fn=die_with_parent if sys.platform == "linux" else None,
    )
    CHILDREN.add(proc)
    return proc


class CliError(Exception):
    pass


async def run_cli(config: Path, *args: str, stdin: bytes | None = None,
                  env: dict[str, str] | None = None, limit: float = 120) -> dict[str, Any]:
    """`gateway <args> --config <config>`; its one JSON object, or CliError."""
    proc = await spawn(
        gateway_command(*args, "--config", str(config)), env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        CHILDREN.discard(proc)
    if proc.returncode != 0:
        raise CliError(f"gateway {' '.join(args)} exited {proc.returncode}: {err.decode()}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


class GatewayProcess:
    """One `gateway serve` child process; its output goes to a log file in the folder."""

    def __init__(self, config: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.name = name
        # No load balancer watches /readyz here: stop at once on SIGTERM, without the
        # drain window (`server.drain_grace`; a gateway without that key ignores this).
        self.env = {"GATEWAY_SERVER_DRAIN_GRACE": "0", **(env or {})}
        raw: dict[str, Any] = yaml.safe_load(config.read_text())
        self.port = int(raw["server"]["http"]["port"])
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.log_path = config.parent / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, limit: float = START_LIMIT) -> float:
        """Start and wait for /healthz; return how long that took."""
        started = time.monotonic()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = await spawn(
                gateway_command("serve", "--config", str(self.config)), env=self.env,
                stdout=log, stderr=log,
            )
        await self.wait_healthy(limit)
        return time.monotonic() - started

    async def wait_healthy(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} not healthy within {limit:.0f}s:\n{self.log_tail()}")

    def sigkill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)

    async def reap(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        CHILDREN.discard(self.proc)
        return code

    async def stop(self, limit: float = 20) -> int:
        """SIGTERM, then SIGKILL past `limit`; the exit status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), limit)
        except TimeoutError:
            self.sigkill()
        return await self.reap()

    def rss_kib(self) -> int | None:
        """VmRSS of the process, from /proc (None when gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def message(self) -> str | None:
        return self.body.get("message") if isinstance(self.body, dict) else None

    @property
    def code(self) -> int | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


async def call(session: aiohttp.ClientSession, method: str, url: str, *,
               token: str | None = None, headers: dict[str, str] | None = None,
               json_body: Any = None) -> Answer:
    """One request; the body parsed as JSON when it is JSON. Client errors propagate."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with session.request(method, url, headers=sent, json=json_body) as response:
        raw = await response.read()
        body: Any = raw.decode(errors="replace")
        if response.content_type == "application/json":
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        return Answer(response.status, body, {k.lower(): v for k, v in response.headers.items()})


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of one of the gateway's JWTs, unverified (for bookkeeping only)."""
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


def upstream_app() -> web.Application:
    """Answers every request 200 with who the gateway said the caller is."""

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({
            "path": request.path,
            "user": request.headers.get("X-Gateway-User-Id"),
            "kind": request.headers.get("X-Gateway-Token-Kind"),
            "network": request.headers.get("X-Gateway-Network-Id"),
        })

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@contextlib.asynccontextmanager
async def running_upstream(app: web.Application | None = None) -> AsyncIterator[str]:
    """An upstream on loopback (`upstream_app()` unless another app is given)."""
    runner = web.AppRunner(app if app is not None else upstream_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def unique_schema(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


async def drop_pg_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def run_script(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """asyncio.run(main()), with Ctrl-C reported as exit status 130."""
    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130


def install_stop_signals(task: asyncio.Task[Any]) -> None:
    """SIGTERM and SIGINT cancel the main task, so its `finally` blocks clean up."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, task.cancel)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(row):
            numeric = cell.replace(".", "", 1).replace("-", "", 1).isdigit()
            out.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])

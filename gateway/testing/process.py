"""Run the real `gateway` command as a child process, the way an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.testing.support import REPO

START_TIMEOUT = 20.0


def gateway_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


async def run_cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
                  timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *gateway_command(*args), cwd=REPO, env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def die_with_parent() -> None:
    """In the child, before exec: the kernel kills it if the test run itself is killed
    (Linux PR_SET_PDEATHSIG), so no gateway outlives an interrupted run."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class GatewayProcess:
    """`gateway serve` in a child process; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, config_path: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.extra = extra
        self.env = env or {}
        raw: dict[str, Any] = yaml.safe_load(config_path.read_text())
        self.port = int(raw["server"]["http"]["port"])
        https = raw["server"].get("https")
        self.https_port = int(https["port"]) if https else None
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = config_path.parent / f"gateway-{time.monotonic_ns()}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> GatewayProcess:
        log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            *gateway_command("serve", "--config", str(self.config_path), *self.extra),
            cwd=REPO, env={**os.environ, **self.env}, stdout=log, stderr=log,
            preexec_fn=die_with_parent,
        )
        log.close()
        await self.wait_healthy()
        return self

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"gateway exited early:\n{self.log()}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway not healthy within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"gateway did not stop within {timeout}s:\n{self.log()}") from None

    async def __aenter__(self) -> GatewayProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.stop()

"""The published TypeScript SDK (@amityco/ts-sdk) under Node against a real `gateway serve`.

`sdk_dir` installs tests/sdk/package-lock.json with `npm ci` once per test session (again
only when the lock file changed). Without node/npm, or when the install fails, the SDK
tests are skipped with the reason; `GATEWAY_REQUIRE_SDK=1` turns that into a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sdk.support import SDK_DIR, SdkGateway, sdk_gateway_running

SDK_REQUIRED = os.environ.get("GATEWAY_REQUIRE_SDK") == "1"
STAMP = SDK_DIR / "node_modules" / ".gateway-npm-ci"


def _unavailable(reason: str) -> None:
    if SDK_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_SDK=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sdk_dir() -> Path:
    """tests/sdk with node_modules installed from the lock file by `npm ci`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the SDK tests (not on PATH)")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 18:
        _unavailable(f"Node 18 or later is needed for the SDK tests, found {version.stdout!r}")
    lock = hashlib.sha256((SDK_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not (STAMP.exists() and STAMP.read_text() == lock):
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SDK_DIR,
                capture_output=True, text=True, timeout=90, check=False,  # < pytest-timeout
            )
        except subprocess.TimeoutExpired:
            _unavailable("`npm ci` in tests/sdk did not finish within 90 s")
        if done.returncode != 0:
            _unavailable(f"`npm ci` in tests/sdk failed:\n{done.stderr[-2000:]}")
        STAMP.write_text(lock)
    return SDK_DIR


@pytest.fixture
async def sdk_gateway(tmp_path: Path, sdk_dir: Path) -> AsyncIterator[SdkGateway]:
    async with sdk_gateway_running(tmp_path) as gateway:
        yield gateway

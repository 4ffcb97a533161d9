"""`make run PORT=...` passes the port through the config's environment override."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.testing.support import REPO, write_config


def _run_environment(*make_args: str) -> dict[str, str]:
    """The variables `make run` sets for `gateway serve` (a dry run: nothing starts and
    the virtualenv is taken as it is)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "run", *make_args],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]
    words = shlex.split(printed)
    assignments = words[:next(i for i, word in enumerate(words) if "=" not in word)]
    assert words[len(assignments)].endswith("gateway") and "serve" in words
    return dict(word.split("=", 1) for word in assignments)


def test_port_and_https_port_reach_the_listeners(tmp_path: Path) -> None:
    environ = _run_environment("PORT=8081", "HTTPS_PORT=8444")
    config = load_config(write_config(tmp_path), environ=environ)
    assert config.server.http is not None and config.server.https is not None
    assert (config.server.http.host, config.server.http.port) == ("127.0.0.1", 8081)
    assert config.server.https.port == 8444
    assert config.server.https.cert == str(tmp_path / "certs" / "server.pem")
    assert float(config.server.drain_grace) == 0  # Ctrl-C stops at once in development


def test_without_port_the_config_file_decides(tmp_path: Path) -> None:
    environ = _run_environment()
    assert set(environ) == {"GATEWAY_SERVER_DRAIN_GRACE"}

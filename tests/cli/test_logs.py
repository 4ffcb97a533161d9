"""--log-format and --log-level: one compact JSON style for every line, or text."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import aiohttp
import pytest

from gateway.logs import configure_logging
from gateway.testing.process import GatewayProcess
from gateway.testing.support import write_config

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _compact(line: str) -> bool:
    """No whitespace outside string literals: the access log's `","`, `":"` style."""
    return not re.search(r"\s", _STRING.sub('""', line))


async def test_serve_json_lines_are_compact_and_say_pid_urls_and_what_init_made(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    async with GatewayProcess(config, "--log-format", "json") as gateway:
        async with aiohttp.ClientSession() as session, session.get(
            f"{gateway.url}/healthz"
        ) as response:
            assert response.status == 200
        assert gateway.proc is not None
        pid = gateway.proc.pid
    lines = gateway.log().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(_compact(line) for line in lines), lines
    start = next(e for e in entries if "pid" in e)
    assert start["pid"] == pid and gateway.url in start["urls"]
    assert str(pid) in start["message"] and gateway.url in start["message"]
    created = next(e for e in entries if e.get("message", "").startswith("first start"))
    assert {"ca", "kek", "store"} <= set(created["created"])
    assert any(e.get("path") == "/healthz" and "requestId" in e for e in entries)  # access
    assert {e["level"] for e in entries if "level" in e} == {"info"}


def test_text_lines_and_levels(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "text")
    log = logging.getLogger("gateway.test")
    log.info("not shown")
    log.warning("disk %s", "full", extra={"fields": {"free": 0}})
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning gateway\.test: disk full\n", err
    ), err


def test_json_lines_keep_unicode_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "json")
    logging.getLogger("gateway.test").debug("café", extra={"fields": {"n": 1}})
    line = capsys.readouterr().err
    assert line.endswith("\n") and _compact(line.strip())
    entry = json.loads(line)
    assert (entry["level"], entry["message"], entry["n"]) == ("debug", "café", 1)
    assert '"café"' in line


def test_json_is_the_default_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging()
    logging.getLogger("gateway.test").info("hello")
    assert json.loads(capsys.readouterr().err)["message"] == "hello"

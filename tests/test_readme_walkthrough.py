"""The README's "Five minutes with curl" runs as written.

The test reads the section's code blocks and replays every command with bash, in a
temporary copy of the files the walkthrough touches (Makefile, config.yaml, policies/)
that shares the repository's virtualenv. It does what a reader does between commands and
nothing more:

- fills the `<placeholders>` from the answers before (`<networkId>`, `<apiKey>`,
  `<accessToken>`; `<pid of gateway serve>` from the gateway's start line);
- makes the config.yaml edits the comments describe (`# config.yaml: key: value`);
- waits for what a command started in the background (`&`) to come up, and for SIGHUP's
  reload, before the next command;
- moves the fixed ports (8080, 8443, 9000) to free ones: `make run` gets `PORT` and
  `HTTPS_PORT` in its environment, as the README's "Set-up" shows.

An answer the README shows as JSON (`# {"status": "ok"}`, "…" standing for any value)
must be exactly that object; `# 401 "Unauthorized"` must be that message. Loopback only,
bounded by the test's timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.testing.support import REPO, free_port

SECTION = "## Five minutes with curl"
STEP_TIMEOUT = 30.0
START_TIMEOUT = 30.0
ANY = "…"  # the README's "any value" in a shown answer


@dataclass
class Step:
    command: str
    background: bool = False
    expected: Any = None  # a JSON value, or a (status, message) refusal


@dataclass
class ConfigEdit:
    key: str  # dotted: regions.sg.upstreams
    value: str  # YAML


def _code_lines(readme: str) -> list[str]:
    """The section's indented code, dedented; prose between the blocks is left out."""
    start = readme.index(f"\n{SECTION}\n")
    end = readme.index("\n## ", start + 1)
    lines = []
    for line in readme[start:end].splitlines():
        if line.startswith("    "):
            lines.append(line[4:])
        elif not line.strip():
            lines.append("")
    return lines


def _inline_comment(line: str) -> tuple[str, str | None]:
    """`cmd   # note` -> (cmd, note); a `#` inside quotes or without two spaces before
    it is part of the command."""
    match = re.search(r"\s{2,}# (.*)$", line)
    if match is None or line[:match.start()].count("'") % 2:
        return line.rstrip(), None
    return line[:match.start()].rstrip(), match.group(1)


def _expectation(note: str) -> Any:
    """What a comment says the answer is: a JSON value at its start, or `401 "message"`."""
    if note.startswith(("{", "[")):
        value, _ = json.JSONDecoder().raw_decode(note)
        return value
    refusal = re.match(r'(\d{3}) "([^"]+)"', note)
    return (int(refusal.group(1)), refusal.group(2)) if refusal else None


def walkthrough(readme: str) -> list[Step | ConfigEdit]:
    """The section's commands in order, with what the comments say about them."""
    steps: list[Step | ConfigEdit] = []
    lines = _code_lines(readme)
    index = 0
    after_command = False  # a comment right under a command is about its answer
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            after_command = False
            continue
        if line.startswith("#"):
            text = line[1:]
            edit = re.match(r"\s*config\.yaml: ([\w.]+): (.*)$", text)
            if edit is None and steps and isinstance(steps[-1], ConfigEdit):
                edit = re.match(r"\s{2,}([\w.]+): (.*)$", text)  # the edit goes on
            if edit is not None:
                steps.append(ConfigEdit(*edit.groups()))
            elif after_command and isinstance(steps[-1], Step):
                steps[-1].expected = steps[-1].expected or _expectation(text.strip())
            continue
        after_command = True
        while line.endswith("\\"):
            line = line[:-1] + " " + lines[index].strip()
            index += 1
        if "<<'EOF'" in line:  # a here-document: up to its EOF line, kept as written
            end = lines.index("EOF", index)
            line = "\n".join([line, *lines[index:end + 1]])
            index = end + 1
        command, note = _inline_comment(line)
        step = Step(command.removesuffix("&").rstrip(), background=command.endswith("&"))
        if note is not None:
            step.expected = _expectation(note)
        steps.append(step)
    return steps


def matches(expected: Any, actual: Any) -> bool:
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            matches(value, actual[key]) for key, value in expected.items())
    return bool(expected == actual)


class Replay:
    """The copy the commands run in, the processes they started, what they answered."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {"8080": free_port(), "8443": free_port(), "9000": free_port()}
        self.values: dict[str, str] = {}
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []
        # A reader's shell: none of the test run's gateway settings, nor a parent make's.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")
                    and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        self.env.update(PORT=str(self.ports["8080"]), HTTPS_PORT=str(self.ports["8443"]))

    def text(self, command: str) -> str:
        for port, moved in self.ports.items():
            command = re.sub(rf"\b{port}\b", str(moved), command)
        for name in re.findall(r"<([^<>\n]+)>", command):
            assert name in self.values, f"the walkthrough never said what <{name}> is"
            command = command.replace(f"<{name}>", self.values[name])
        return command

    def run(self, step: Step) -> str:
        command = self.text(step.command)
        if step.background:
            log = self.root / f"background-{len(self.background)}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(["bash", "-c", command], cwd=self.root, env=self.env,
                                           stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            self.background.append((process, log))
            self.wait_started(command, process, log)
            return ""
        done = subprocess.run(["bash", "-c", command], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False)
        assert done.returncode == 0, f"{command}\nexited {done.returncode}:\n{done.stderr}"
        if command.startswith("kill -HUP"):
            self.wait_for_log("configuration reloaded")
        return done.stdout

    def wait_started(self, command: str, process: subprocess.Popen[bytes], log: Path) -> None:
        """What a reader waits for after starting a server: its port answering."""
        ports = [p for p in self.ports.values() if str(p) in command]
        if "make run" in command:
            ports = [self.ports["8080"]]
            self.values["pid of gateway serve"] = self.wait_for_log(r"starting: pid (\d+)")
        deadline = time.monotonic() + START_TIMEOUT
        for port in ports:
            while not _accepts(port):
                assert process.poll() is None, f"{command} exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{command}: :{port} not up\n{log.read_text()}"
                time.sleep(0.05)

    def wait_for_log(self, pattern: str) -> str:
        """The first group of `pattern` in the gateway's log (`make run`'s output)."""
        _, log = self.background[0]
        deadline = time.monotonic() + START_TIMEOUT
        seen = len(log.read_text()) if pattern == "configuration reloaded" else 0
        while True:
            match = re.search(pattern, log.read_text()[seen:])
            if match:
                return match.group(1) if match.groups() else match.group(0)
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{log.read_text()}"
            time.sleep(0.05)

    def edit_config(self, edit: ConfigEdit) -> None:
        path = self.root / "config.yaml"
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        *parents, last = edit.key.split(".")
        target = config
        for name in parents:
            target = target[name]
        target[last] = yaml.safe_load(self.text(edit.value))
        path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def stop(self) -> None:
        for process, _ in reversed(self.background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=STEP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _copy(tmp_path: Path) -> Path:
    """What the walkthrough reads and writes, beside the repository's own virtualenv."""
    stamp = REPO / ".venv" / ".installed"
    if not stamp.exists():
        pytest.skip("no .venv/.installed: the virtualenv was not made by `make`")
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("Makefile", "pyproject.toml", "config.yaml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "policies", root / "policies")
    (root / ".venv").symlink_to(REPO / ".venv")
    # `make run` must not reinstall the shared virtualenv from the copy.
    older = min(stamp.stat().st_mtime, (root / "pyproject.toml").stat().st_mtime) - 1
    os.utime(root / "pyproject.toml", (older, older))
    return root


def test_the_walkthrough_is_read_as_commands() -> None:
    steps = walkthrough((REPO / "README.md").read_text(encoding="utf-8"))
    commands = [s.command for s in steps if isinstance(s, Step)]
    assert commands[0] == "make run" and any("kill -HUP" in c for c in commands)
    assert [s.key for s in steps if isinstance(s, ConfigEdit)] == [
        "regions.sg.upstreams", "policies"]
    assert sum(1 for s in steps if isinstance(s, Step) and s.expected is not None) >= 5


@pytest.mark.timeout(120)
def test_five_minutes_with_curl_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None or shutil.which("make") is None:
        pytest.skip("needs curl and make")
    replay = Replay(_copy(tmp_path))
    answers: list[tuple[str, str]] = []
    try:
        for step in walkthrough((REPO / "README.md").read_text(encoding="utf-8")):
            if isinstance(step, ConfigEdit):
                replay.edit_config(step)
                continue
            out = replay.run(step)
            answers.append((step.command, out))
            _check(step, out)
            if out.startswith("{"):
                fields = json.loads(out)
                replay.values.update({k: v for k, v in fields.items() if isinstance(v, str)})
    finally:
        replay.stop()
    command, out = answers[-1]
    assert "/files/" in command  # the proxy demo's last call reached the upstream
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200") and "x-request-id:" in head.lower(), out
    assert body == "hello\n"


def _check(step: Step, out: str) -> None:
    if step.expected is None:
        return
    answer = json.loads(out)
    if isinstance(step.expected, tuple):
        status, message = step.expected
        assert answer["message"] == message, (step.command, answer)
        assert answer["code"] == 400000 + (status - 400) * 100, (step.command, answer)
        return
    assert matches(step.expected, answer), f"{step.command}\nREADME: {step.expected}\ngot: {out}"

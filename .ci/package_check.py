"""The package as a user gets it: build the compiled wheel from the source the Dockerfile
copies, as its build stage does (so run this with a Python that has the `compile` extra),
install it with docker/install.sh (the image's install script) into a virtualenv in a
temporary folder outside the repository, then run it as a pip user and as the container
entry point would: `gateway init --config-dir`, `gateway serve` on free loopback ports,
/healthz, a network from the CLI, a login with the API key, a call proxied to a small
upstream on loopback, SIGTERM.

Standard library only, so it runs under any Python 3.11+. Bounded: every step has a time
limit; the package index is needed for the wheel's dependencies.

    .venv/bin/python .ci/package_check.py [--keep]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 60.0
INSTALL_TIMEOUT = 600.0  # dependencies from the package index
START_TIMEOUT = 30.0
SHIPPED = ("gateway/defaults/config.yaml", "gateway/defaults/policies/default.yaml",
           "gateway/console_ui/static/index.html", "gateway/py.typed")


class CheckFailed(Exception):
    pass


class Report:
    def __init__(self) -> None:
        self.passed = 0

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"ok   {what}", flush=True)


def run(*command: str | Path, timeout: float = STEP_TIMEOUT, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> str:
    """The command's stdout; CheckFailed with its output when it fails."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"{' '.join(map(str, command))} exited {done.returncode}:\n"
                          f"{done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(method: str, url: str, body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    sent = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# --- the wheel --------------------------------------------------------------------------


def build_wheel(work: Path) -> Path:
    """From what the Dockerfile's build stage copies, in a folder of its own (an in-tree
    build could pick up stale files from build/), compiled as the image builds it: this
    Python must have the `compile` extra (the project's .venv has it)."""
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "gateway", source / "gateway",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
        "--no-build-isolation", "--wheel-dir", work / "dist", source,
        env={**os.environ, "GATEWAY_COMPILE": "1"}, cwd=source, timeout=INSTALL_TIMEOUT)
    (wheel,) = (work / "dist").glob("gateway-*.whl")
    return wheel


def install(wheel: Path, prefix: Path, config_dir: Path, state_dir: Path) -> None:
    env = {**os.environ, "GATEWAY_PREFIX": str(prefix), "GATEWAY_USER": "",
           "GATEWAY_CONFIG_DIR": str(config_dir), "GATEWAY_STATE_DIR": str(state_dir)}
    run("sh", REPO / "docker" / "install.sh", wheel, env=env, timeout=INSTALL_TIMEOUT)


# --- what runs against the installed gateway ----------------------------------------------


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers every GET with what it received: the path and the X-Gateway-* headers."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "userId": self.headers.get("X-Gateway-User-Id"),
                           "authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the report says enough
        pass


@contextmanager
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    """`gateway serve` (or the entry point) until the block ends, then SIGTERM: exit 0."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=log.parent, start_new_session=True)
    try:
        wait_healthy(port, process, log)
        yield
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=STEP_TIMEOUT)
        if code != 0:
            raise CheckFailed(f"gateway exited {code} on SIGTERM:\n{log.read_text()}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckFailed(f"gateway exited {process.returncode}:\n{log.read_text()}")
        try:
            if request("GET", f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"}):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise CheckFailed(f"no /healthz within {START_TIMEOUT}s:\n{log.read_text()}")


def listeners(http_port: int, https_port: int, state: Path) -> dict[str, str]:
    """Loopback listeners on free ports, through the config's environment overrides."""
    return {"GATEWAY_SERVER_HTTP": f"{{host: 127.0.0.1, port: {http_port}}}",
            "GATEWAY_SERVER_HTTPS": f"{{host: 127.0.0.1, port: {https_port}, "
                                    f"cert: {state}/server.pem, key: {state}/server.key}}",
            "GATEWAY_SERVER_DRAIN_GRACE": "0"}


def login_and_proxy(report: Report, gateway: Path, env: dict[str, str], port: int,
                    where: str) -> None:
    network = json.loads(run(gateway, "network", "create", "--name", "acme", env=env))
    report.ok(f"{where}: gateway network create -> {network['networkId']}")
    base = f"http://127.0.0.1:{port}"
    status, session = request("POST", f"{base}/api/v3/sessions",
                              {"userId": "bob", "deviceId": "laptop"},
                              {"x-api-key": network["apiKey"]})
    expect(status == 200 and session["users"][0]["userId"] == "bob", "login", status, session)
    report.ok(f"{where}: POST /api/v3/sessions with x-api-key -> an access token")
    status, seen = request("GET", f"{base}/api/v3/hello",
                           headers={"Authorization": f"Bearer {session['accessToken']}"})
    expect(status == 200 and seen == {"path": "/api/v3/hello", "userId": "bob",
                                      "authorization": None}, "proxied call", status, seen)
    report.ok(f"{where}: GET /api/v3/hello with the token -> the upstream, as bob")
    status, refused = request("GET", f"{base}/api/v3/hello")
    expect(status == 401 and refused["message"] == "Unauthorized", "no token", status, refused)
    report.ok(f"{where}: the same call without a token -> 401 Unauthorized")


def expect(condition: bool, what: str, *seen: object) -> None:
    if not condition:
        raise CheckFailed(f"{what}: got {seen!r}")


def as_pip_user(report: Report, prefix: Path, work: Path, upstream_port: int) -> None:
    """`gateway init --config-dir`, the config edited as a user would, `gateway serve`."""
    etc, gateway = work / "etc", prefix / "bin" / "gateway"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    first = json.loads(run(gateway, "init", "--config-dir", etc, env=env, cwd=work))
    expect(first["created"][:2] == ["config", "policy"], "init --config-dir", first)
    report.ok("gateway init --config-dir writes config.yaml and policies/default.yaml")
    mine = (etc / "config.yaml").read_text().replace(
        "upstreams: [https://api.sg.amity.co]", f"upstreams: [http://127.0.0.1:{upstream_port}]")
    (etc / "config.yaml").write_text(mine)
    again = json.loads(run(gateway, "init", "--config-dir", etc, env=env, cwd=work))
    expect(again["created"] == [] and (etc / "config.yaml").read_text() == mine,
           "init again", again)
    report.ok("gateway init --config-dir again overwrites nothing")
    port = free_port()
    env.update(listeners(port, free_port(), etc / "certs"))
    command = [str(gateway), "serve", "--config", str(etc / "config.yaml")]
    with serving(command, env, port, work / "serve.log"):
        report.ok("gateway serve: /healthz answers")
        login_and_proxy(report, gateway, {**env, "GATEWAY_CONFIG": str(etc / "config.yaml")},
                        port, "pip")
    report.ok("gateway serve: SIGTERM -> exit 0")


def as_container(report: Report, prefix: Path, work: Path) -> None:
    """The image's ENTRYPOINT and CMD (`gateway-entrypoint serve`) with its two volumes as
    folders: config in one, every piece of state in the other."""
    etc, state = work / "container-etc", work / "container-state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    port = free_port()
    env.update(listeners(port, free_port(), state / "certs"),
               GATEWAY_CONFIG_DIR=str(etc), GATEWAY_STATE_DIR=str(state))
    entrypoint = prefix / "bin" / "gateway-entrypoint"
    with serving([str(entrypoint), "serve"], env, port, work / "container.log"):
        report.ok("gateway-entrypoint serve: /healthz answers")
        made = {path.relative_to(work).as_posix()
                for folder in (etc, state) for path in folder.rglob("*")
                if path.is_file() and not path.name.endswith(("-wal", "-shm"))}  # SQLite's
        expect(made == {"container-etc/config.yaml", "container-etc/policies/default.yaml",
                        "container-state/gateway.db", "container-state/keys/kek.key",
                        "container-state/certs/ca.pem", "container-state/certs/ca.key",
                        "container-state/certs/server.pem", "container-state/certs/server.key"},
               "container files", sorted(made))
        report.ok("gateway-entrypoint: config in GATEWAY_CONFIG_DIR, state in GATEWAY_STATE_DIR")
        network = json.loads(run(entrypoint, "network", "create", "--name", "box", env=env))
        expect(network["region"] == "sg", "entrypoint network create", network)
        report.ok("gateway-entrypoint network create (docker run IMAGE network create)")
    report.ok("gateway-entrypoint serve: SIGTERM -> exit 0")


def check(report: Report, work: Path) -> None:
    wheel = build_wheel(work)
    names = set(zipfile.ZipFile(wheel).namelist())
    expect(set(SHIPPED) <= names, "wheel contents", sorted(set(SHIPPED) - names))
    report.ok(f"built {wheel.name} with the default config and policy")
    prefix = work / "opt" / "gateway"
    install(wheel, prefix, work / "install-etc", work / "install-state")
    where = run(prefix / "bin" / "python", "-c", "import gateway; print(gateway.__file__)",
                cwd=work)
    expect(Path(where.strip()).is_relative_to(prefix), "installed package", where)
    report.ok("docker/install.sh installed it into a fresh virtualenv outside the repository")
    version = run(prefix / "bin" / "gateway", "--version", cwd=work)
    expect(version.strip().endswith("(compiled)"), "gateway --version", version)
    report.ok(f"the compiled build: {version.strip()}")
    with upstream() as upstream_port:
        as_pip_user(report, prefix, work, upstream_port)
    as_container(report, prefix, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gateway-package-"))
    report, failed = Report(), 0
    started = time.monotonic()
    try:
        check(report, work)
    except (CheckFailed, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
        failed = 1
        print(f"FAIL {exc}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"({time.monotonic() - started:.0f}s{', kept ' + str(work) if args.keep else ''})")
    print(f"package: {report.passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

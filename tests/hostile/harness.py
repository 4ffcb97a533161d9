"""What the hostile catalogue attacks, and the checks every case shares.

- `HostileGateway`: a real `gateway serve` process (its own SQLite store, the shipped
  policies behind two extra rules: `deny` on `/internal/**` and `/api/v9/admin/**`,
  `public` on `/pub/**`), seeded with two networks, a user with an access token and an
  admin with an admin token, before it starts.
- `RecordingUpstream`: the upstream of every region, on loopback in a thread of this
  process. It answers 200 to each request and records it exactly as it arrived, so a case
  can tell whether anything got through the gateway (and what).
- `exchange`: one raw connection, bytes sent exactly as given; the answers parsed back.

All blocking (sockets, threads, a child process): the catalogue's tests are plain
functions, independent of any event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httptools

from gateway.testing.support import REPO, free_port, write_config

START_TIMEOUT = 30.0
ANSWER_TIMEOUT = 5.0

HOSTILE_POLICY = """
rules:
  - {name: internal-deny, match: {path: "/internal/**"}, auth: deny}
  - {name: v9-admin-deny, match: {path: "/api/v9/admin/**"}, auth: deny}
  - {name: pub, match: {path: "/pub/**"}, auth: public}
"""

# Marks of a stack trace or an HTML error page: never in any answer of the gateway's own.
LEAK_MARKS = (b"Traceback", b'File "', b"<html", b"<!DOCTYPE", b"aiohttp/", b"Python/3")


# --------------------------------------------------------------------------------------
# The recording upstream


@dataclass(frozen=True)
class Seen:
    """One request as the upstream received it."""

    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header_names(self) -> set[str]:
        return {name.decode("latin-1").lower() for name, _ in self.headers}


UPSTREAM_BODY = b'{"upstream": "recorder"}'
UPSTREAM_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Upstream: recorder\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(UPSTREAM_BODY), UPSTREAM_BODY)
)
# It speaks no WebSocket: an upgrade is refused the way a plain HTTP server would.
UPSTREAM_NO_UPGRADE = b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"


class _Collector:
    """httptools callbacks for one upstream connection."""

    def __init__(self, upstream: RecordingUpstream, conn: socket.socket) -> None:
        self.upstream = upstream
        self.conn = conn
        self.parser: httptools.HttpRequestParser | None = None
        self._reset()

    def _reset(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.parser is not None
        method = self.parser.get_method().decode("latin-1")
        self.upstream.record(Seen(method, self.target, tuple(self.headers), bytes(self.body)))
        self._reset()
        if self.parser.should_upgrade():
            self.conn.sendall(UPSTREAM_NO_UPGRADE)
        elif method == "HEAD":  # the same head, no body
            self.conn.sendall(UPSTREAM_ANSWER[: -len(UPSTREAM_BODY)])
        else:
            self.conn.sendall(UPSTREAM_ANSWER)


class RecordingUpstream:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="recording-upstream",
                                         daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def take(self) -> tuple[list[Seen], list[str]]:
        """What arrived since the last call (requests, and framing errors)."""
        with self._lock:
            seen, errors = self.seen, self.errors
            self.seen, self.errors = [], []
        return seen, errors

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        collector = _Collector(self, conn)
        parser = httptools.HttpRequestParser(collector)
        collector.parser = parser
        with conn:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    return
                except httptools.HttpParserError as exc:
                    with self._lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    return


# --------------------------------------------------------------------------------------
# Raw exchanges


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[-1] if values else None


@dataclass
class Exchange:
    """Everything the gateway sent back on one connection, and how the connection ended."""

    answers: list[Answer]
    leftover: bytes  # bytes after the last complete answer (must be none)
    raw: bytes
    reset: bool  # ended by a reset rather than an orderly close

    @property
    def closed_silently(self) -> bool:
        return not self.raw


def parse_answers(data: bytes) -> tuple[list[Answer], bytes]:
    """HTTP/1.x responses in `data`; interim (1xx) ones are skipped."""
    answers: list[Answer] = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            break
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower().decode("latin-1"),
                            value.strip().decode("latin-1")))
        names = dict(headers)
        if 100 <= status < 200:
            data = rest
            continue
        if "content-length" in names:
            length = int(names["content-length"])
            if len(rest) < length:
                break
            body, data = rest[:length], rest[length:]
        elif "chunked" in names.get("transfer-encoding", "").lower():
            body, data, complete = _dechunk(rest)
            if not complete:
                break
        else:
            body, data = rest, b""
        answers.append(Answer(status, headers, body))
    return answers, data


def _dechunk(data: bytes) -> tuple[bytes, bytes, bool]:
    body = bytearray()
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return bytes(body), data, False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            _, sep, rest = rest.partition(b"\r\n")  # no trailers from the gateway
            return bytes(body), rest, bool(sep)
        body += rest[:size]
        data = rest[size + 2:]


def exchange(port: int, data: bytes, *, timeout: float = ANSWER_TIMEOUT,
             send_delay: float = 0.0) -> Exchange:
    """Send `data` on a fresh connection and read until the gateway closes it.

    Sending runs in a thread while this one reads, so an early answer (the gateway may
    answer and close before the request is fully sent) is read before any reset.
    A connection still open after `timeout` fails the case: every hostile request carries
    `Connection: close` or is one the gateway must close on.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        with contextlib.suppress(OSError):
            if send_delay:
                time.sleep(send_delay)
            sock.sendall(data)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray()
    reset = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"connection still open after {timeout}s; received {bytes(received)[:300]!r}"
                ) from None
            except ConnectionResetError:
                reset = True
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
        sender.join(timeout)
    answers, leftover = parse_answers(bytes(received))
    return Exchange(answers, leftover, bytes(received), reset)


def http(method: str, path: str, headers: list[tuple[str, str]] | None = None,
         body: bytes = b"", *, length: bool = True, host: str = "api.amity.co") -> bytes:
    """A well-framed HTTP/1.1 request with `Connection: close` (what a case varies is in
    `path`, `headers` and `body`)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


# --------------------------------------------------------------------------------------
# The gateway process


@dataclass
class Seeded:
    """What the seeding left in the store, for the cases to use."""

    open_api_key: str
    secure_api_key: str
    access_token: str  # user "victim" of the open network
    admin_token: str  # admin "root" (role admin) of the secure network
    kid: str
    private_key: Any  # the gateway's signing key: lets a case sign exactly what it means


class HostileGateway:
    def __init__(self, folder: Path, upstream: RecordingUpstream, *,
                 data_plane: bool = True) -> None:
        self.folder = folder
        self.upstream = upstream
        policy = folder / "hostile-policy.yaml"
        policy.write_text(HOSTILE_POLICY)
        self.port = free_port()
        regions: dict[str, Any] = {"default": "sg"}
        for name, hosts in (("sg", ["api.sg.amity.co", "api.amity.co"]),
                            ("eu", ["api.eu.amity.co"]), ("us", ["api.us.amity.co"])):
            regions[name] = {"hosts": hosts, "upstreams": [upstream.url]}
        self.config_path = write_config(folder, {
            # data_plane false: every request through aiohttp's server (the differential test)
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": self.port},
                       "shutdown_timeout": "5s", "data_plane": data_plane},
            "regions": regions,
            "policies": [str(policy), str(REPO / "policies" / "default.yaml")],
            "proxy": {"read_timeout": "3s", "connect_timeout": "2s"},
        })
        self.db_path = folder / "var" / "gateway.db"
        self.log_path = folder / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seed(self) -> Seeded:
        import asyncio

        return asyncio.run(_seed(self.config_path))

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
                cwd=REPO, stdout=log, stderr=log, env=dict(os.environ),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited at start:\n{self.log()}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise AssertionError(f"gateway not healthy within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            got = exchange(self.port, http("GET", "/healthz"), timeout=2)
        except (OSError, AssertionError):
            return False
        return len(got.answers) == 1 and got.answers[0].status == 200

    def get_json(self, path: str) -> Any:
        got = exchange(self.port, http("GET", path))
        assert len(got.answers) == 1 and got.answers[0].status == 200, got.raw[:300]
        return json.loads(got.answers[0].body)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: the store's whole durable state."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {table: sorted(conn.execute(f'SELECT * FROM "{table}"'), key=repr)
                    for table in tables}
        finally:
            conn.close()


async def _seed(config_path: Path) -> Seeded:
    import asyncio

    from gateway.auth.loader import load_token_service
    from gateway.auth.passwords import hash_password
    from gateway.bootstrap import init_files
    from gateway.config import load_config
    from gateway.store import open_store

    config = load_config(config_path, environ={})
    await asyncio.to_thread(init_files, config)
    store = await open_store(config)
    try:
        tokens = await load_token_service(config, store, time.time)
        open_net = await store.create_network("open", "sg", False)
        secure_net = await store.create_network("secure", "sg", True)
        await store.upsert_user(open_net.id, "victim", "Victim")
        access, credential = await tokens.issue(
            kind="access", network_id=open_net.id, subject="victim", ttl=3600,
            device_id="dev-1")
        await store.record_credential(credential, claim_device=True)
        await store.create_admin(secure_net.id, "root", "admin", hash_password("pw", log2_n=10))
        admin, credential = await tokens.issue_admin(secure_net.id, "root", "admin", 3600)
        await store.record_credential(credential)
        signer = tokens.ring.signer()
        return Seeded(open_api_key=open_net.api_key, secure_api_key=secure_net.api_key,
                      access_token=access, admin_token=admin, kid=signer.kid,
                      private_key=signer.private_key)
    finally:
        await store.close()

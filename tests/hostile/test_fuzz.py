"""A bounded fuzz run of the request path: hypothesis-made request lines, headers and
bodies, sent raw to an in-process gateway (its real runner and middlewares, run in a
thread of its own) in front of the recording upstream.

For every request: no 5xx, every error the gateway makes is the contract's JSON with no
stack trace, the connection ends (no hang), the upstream never receives a request it
cannot parse; afterwards the gateway still serves. About 200 examples, bounded to ~20 s.
"""

from __future__ import annotations

import asyncio
import json
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import code_for_status
from tests.hostile.harness import (
    LEAK_MARKS,
    HostileGateway,
    RecordingUpstream,
    Seeded,
    exchange,
    http,
)
from tests.proxy.conftest import in_process_gateway

EXAMPLES = 200
TIME_BUDGET = 20.0


class ThreadedGateway:
    """`in_process_gateway` on an event loop of its own, in a thread: the fuzz below is
    plain blocking code, so hypothesis drives it without any event loop of its own."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-gateway", daemon=True)

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the in-process gateway did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._error is None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with in_process_gateway(self.config_path) as (url, _app):
            self.port = int(url.rsplit(":", 1)[1])
            self._ready.set()
            await self._stop.wait()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[ThreadedGateway, RecordingUpstream, Seeded]]:
    upstream = RecordingUpstream()
    config = HostileGateway(tmp_path_factory.mktemp("fuzz"), upstream)
    seeded = config.seed()
    try:
        with ThreadedGateway(config.config_path) as gateway:
            yield gateway, upstream, seeded
    finally:
        upstream.close()


# --------------------------------------------------------------------------------------
# What a request is made of

PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%"
TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
PREFIXES = ["", "/pub", "/internal", "/api/v3", "/api/v3/sessions", "/api/v3/session",
            "/api/v4/sessions", "/api/v4/sessions/users", "/api/v3/users/victim/ban",
            "/console/v1/login", "/console/v1/logout", "/console", "/api/v3/networks/me",
            "/api/v3/networks/certificates", "/api/v3/networks/certificates/ca",
            "/api/v3/networks/server-key", "/api/v3/notification/setting",
            "/api/v1/admin-token", "/api/v3/authentication/token",
            "/api/v4/authentication/token", "/api/v3/audit-logs", "/healthz", "/readyz",
            "/metrics", "/.well-known/jwks.json", "/socket.io", "/mqtt", "/api/v9/admin"]
SEGMENTS = ["a", "x1", "..", ".", "%2e%2e", "%2E.", "%2f", "%5C", "%00", "%c0%ae", "%zz", "%",
            "%41", "%7E", "%C3%A9", "~", "*", ";", "..;", "", "victim", "%252e"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]
HEADER_NAMES = ["Authorization", "Content-Type", "x-api-key", "x-server-key", "Cookie",
                "X-Gateway-User-Id", "X_Gateway_Role", "Connection", "Keep-Alive", "Upgrade",
                "Expect", "X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "X-Request-Id",
                "Accept-Encoding", "Content-Encoding", "TE", "Trailer", "Sec-WebSocket-Key",
                "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Origin", "Range",
                "Proxy-Authorization", "Accept"]
HEADER_VALUES = ["Bearer garbage", "Bearer a.b.c", "Bearer", "Basic dXNlcjpwdw==", "websocket",
                 "Upgrade", "upgrade, close", "100-continue", "gzip", "deflate, br", "chunked",
                 "close, X-Secret", "keep-alive", "trailers", "bytes=0-1", "1.2.3.4",
                 "application/json", "text/plain", "13", "dGhlIHNhbXBsZSBub25jZQ==",
                 "gateway_console=x", "*/*", "for=1.2.3.4;proto=https", ""]
# Header text: any byte a header line may hold on the wire (no CR, LF or NUL).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    blacklist_characters="\x7f"), max_size=40)

json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["userId", "deviceId", "deviceInfo", "kind", "username", "password",
                         "name", "csr", "level", "adminToken", "expiresInHours",
                         "useSecureAuthentication", "notifiableEvents", "x"]),
        inner, max_size=4),
    max_leaves=10,
).map(lambda value: json.dumps(value).encode())


@st.composite
def requests(draw: st.DrawFn, seeded: Seeded) -> bytes:
    rarely = draw(st.integers(0, 9)) == 0  # most requests parse: the deeper code gets fuzzed
    method = draw(st.text(TOKEN, min_size=1, max_size=8) if rarely else st.sampled_from(METHODS))
    segments = draw(st.lists(st.sampled_from(SEGMENTS) | st.text(PCHAR, max_size=6),
                             max_size=4))
    path = draw(st.sampled_from(PREFIXES)) + "".join(f"/{s}" for s in segments)
    path = (path or "/") + draw(st.sampled_from(["", "/", "//"]))
    query = draw(st.none() | st.text(string.ascii_letters + string.digits + "=&-_.~,%",
                                     max_size=20)
                 | st.sampled_from(["a=%20b", "q=%23x", "n=%00", "c=%0d%0aX:%20y", "%zz"]))
    target = path + ("" if query is None else f"?{query}")

    credentials = {"Authorization": [f"Bearer {seeded.access_token}",
                                     f"Bearer {seeded.admin_token}"],
                   "x-api-key": [seeded.open_api_key, seeded.secure_api_key]}
    headers: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(HEADER_NAMES) | st.text(TOKEN, min_size=1, max_size=12))
        choices = credentials.get(name, []) + HEADER_VALUES
        headers.append((name, draw(st.sampled_from(choices) | HEADER_TEXT)))

    body = draw(st.sampled_from([b""]) | st.binary(max_size=300) | json_bodies)
    framing = draw(st.sampled_from(["length"] * 6 + ["chunked"] * 2 + ["bad-chunked", "none"]))
    lines = [f"{method} {target} HTTP/1.1", "Host: api.amity.co"]
    lines += [f"{name}: {value}" for name, value in headers]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing in ("chunked", "bad-chunked"):
        lines.append("Transfer-Encoding: chunked")
        size = f"{len(body):x}" if framing == "chunked" else draw(
            st.sampled_from(["-1", "zz", "ffffffffffffffffffff", "1;" + "x" * 10, ""]))
        body = (f"{size}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


# --------------------------------------------------------------------------------------


def test_fuzzed_requests_never_get_a_5xx(
        fuzzed: tuple[ThreadedGateway, RecordingUpstream, Seeded]) -> None:
    gateway, upstream, seeded = fuzzed
    deadline = time.monotonic() + TIME_BUDGET
    statuses: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests(seeded))
    def one(data: bytes) -> None:
        if time.monotonic() > deadline:
            return  # the time bound: the remaining examples pass without being sent
        upstream.take()
        got = exchange(gateway.port, data, timeout=5)
        _, upstream_errors = upstream.take()
        assert not upstream_errors, f"the upstream could not parse what it got: {upstream_errors}"
        for answer in got.answers:
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            assert answer.status < 500, (answer.status, answer.body[:300], data[:300])
            from_upstream = answer.header("x-upstream") == "recorder"
            if answer.status >= 400 and not from_upstream and answer.body:
                assert (answer.header("content-type") or "").startswith("application/json")
                error = json.loads(answer.body)
                assert error["status"] == "error" and isinstance(error["message"], str)
                assert error["code"] in (code_for_status(answer.status), 400300, 400301,
                                         400312), error
            if answer.status >= 400:  # (the console UI's pages are HTML, and fine)
                for mark in LEAK_MARKS:
                    assert mark not in answer.body, (mark, answer.body[:500])
            assert "aiohttp" not in (answer.header("server") or ""), answer.headers
        assert gateway.alive

    one()
    assert sum(statuses.values()) >= 50, statuses  # the run did exercise the gateway
    assert gateway.alive
    after = exchange(gateway.port, http("GET", "/healthz"))
    assert [a.status for a in after.answers] == [200]

"""The published SDK's browser build in headless Chromium, logging in through a real gateway
from another origin (API.md section 3 sessions, section 4 CORS; README "Pointing the
TypeScript SDK at the gateway": "Browsers: list the app's origin in server.cors_origins").

One `gateway serve` for the module (tests/sdk/support.py, with the recording SDK upstream
behind it) lists one of two loopback page origins in `server.cors_origins`; both serve
tests/sdk/browser/ (tests/sdk/browser_support.py). The page loads @amityco/ts-sdk's UMD
bundle from its own origin, calls `Client.createClient(apiKey, 'sg', {apiEndpoint: {http,
mqtt}})` and `Client.login({userId, displayName}, sessionHandler)`, reads the chat
settings through the gateway and leaves the outcome in `window.__result`. Every request
the browser makes is recorded (Playwright events, and DevTools for the preflights, which
Playwright does not report) and must stay on loopback; the gateway's side comes from its
access log. Screenshots: tests/browser/screenshots/sdk-browser-*.png.

Skipped with the reason without node_modules, Playwright or Chromium; GATEWAY_REQUIRE_SDK=1
and GATEWAY_REQUIRE_BROWSER=1 (CI) turn that into a failure.

Time: about 5 s in all. Bounds: set-up 20 s (after the shared `npm ci`, which has its own),
each test 12 s, tear-down 10 s, so the file cannot take a minute.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest
import pytest_asyncio

from tests.browser.conftest import SCREENSHOTS
from tests.sdk.browser_support import (
    PageOrigins,
    Traffic,
    access_log,
    chromium,
    is_loopback,
    page_origins,
    umd_bundle,
)
from tests.sdk.support import SdkGateway, sdk_gateway_running
from tests.sdk.upstream import CHAT_SETTINGS

if TYPE_CHECKING:
    from playwright.async_api import Browser

# The browser and the gateway live on the module's event loop, shared by both tests.
pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.timeout(12, func_only=True)]
SETUP_TIMEOUT = 20.0
TEARDOWN_TIMEOUT = 10.0
PAGE_TIMEOUT_MS = 8_000  # the login and the realtime wait (3 s) take well under 1 s here
SESSIONS = "/api/v5/sessions"
CHAT = "/api/v3/network-settings/chat"
SDK_LOGIN_HEADERS = {"x-api-key", "content-type", "set-access-token-cookie"}


@dataclass
class Setup:
    gw: SdkGateway
    origins: PageOrigins
    browser: Browser
    network: dict[str, Any]


@dataclass
class PageRun:
    origin: str
    result: dict[str, Any]
    traffic: Traffic
    screenshot: Path
    log_mark: int  # access-log lines before the page opened
    upstream_mark: int  # upstream requests before the page opened

    def describe(self) -> str:
        return f"window.__result = {self.result}\n{self.traffic.describe()}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory,
                sdk_dir: Path) -> AsyncIterator[Setup]:
    bundle = umd_bundle(sdk_dir)
    stack = AsyncExitStack()
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            browser = await stack.enter_async_context(chromium())
            origins = await stack.enter_async_context(page_origins(bundle))
            overrides = {"server": {"cors_origins": [origins.allowed], "access_log": True,
                                    "workers": 1}}  # one ordered access log
            gw = await stack.enter_async_context(
                sdk_gateway_running(tmp_path_factory.mktemp("browser-sdk"), overrides))
            network = await gw.network()
        yield Setup(gw, origins, browser, network)
    finally:
        async with asyncio.timeout(TEARDOWN_TIMEOUT):
            await stack.aclose()


async def run_page(setup: Setup, origin: str, user_id: str, shot: str) -> PageRun:
    """Open the page from `origin` in a fresh context, wait (bounded) for its login to
    settle, screenshot it."""
    gw = setup.gw
    log_mark = await access_log_mark(gw)
    upstream_mark = len(gw.upstream.requests)
    context = await setup.browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = await context.new_page()
        traffic = Traffic()
        await traffic.watch(context, page)
        query = urlencode({
            "apiKey": setup.network["apiKey"], "http": gw.url,
            "mqtt": f"ws://{gw.address}/mqtt", "userId": user_id,
            "displayName": f"{user_id} (browser SDK e2e)", "realtimeMs": 3000,
        })
        await page.goto(f"{origin}/?{query}")
        await page.wait_for_function("() => window.__result && window.__result.done",
                                     timeout=PAGE_TIMEOUT_MS)
        result: dict[str, Any] = await page.evaluate("() => window.__result")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"sdk-browser-{shot}.png"
        await page.screenshot(path=path, full_page=True)
    finally:
        await context.close()
    return PageRun(origin, result, traffic, path, log_mark, upstream_mark)


async def access_log_mark(gw: SdkGateway, wait: float = 3.0) -> int:
    """The number of access-log lines up to a marker request of our own. One worker logs
    each request as it completes, so every earlier request comes before the marker, even
    one whose line was still in the buffer (flushed every 0.2 s) when this was called."""
    marker = f"browser-sdk-mark-{uuid.uuid4().hex}"
    status, _ = await gw.call("GET", "/healthz", headers={"X-Request-Id": marker})
    assert status == 200
    deadline = time.monotonic() + wait
    while True:
        ids = [line["requestId"] for line in access_log(gw.gateway.log())]
        if marker in ids:
            return ids.index(marker) + 1
        assert time.monotonic() < deadline, f"marker {marker} not in the access log"
        await asyncio.sleep(0.05)


async def logged(gw: SdkGateway, run: PageRun, method: str, path: str, *,
                 at_least: int = 1, wait: float = 2.0) -> list[dict[str, Any]]:
    """The gateway's access-log lines for `method path` since `run` began, once at least
    `at_least` are there (the log is flushed every 0.2 s), else what is there after `wait`."""
    deadline = time.monotonic() + wait
    while True:
        lines = [line for line in access_log(gw.gateway.log())[run.log_mark:]
                 if line["method"] == method and line["path"] == path]
        if len(lines) >= at_least or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.1)


def upstream_seen(gw: SdkGateway, run: PageRun, path: str) -> list[dict[str, Any]]:
    return [r for r in gw.upstream.requests[run.upstream_mark:] if r["path"] == path]


def assert_loopback_only(run: PageRun, gw: SdkGateway) -> None:
    """Every URL the browser asked for (page, scripts, XHR, preflights, WebSockets) was on
    loopback, and went either to the page's own origin or to the gateway."""
    urls = run.traffic.urls()
    assert urls, run.describe()
    outside = [url for url in urls if not is_loopback(url)]
    assert outside == [], (outside, run.describe())
    others = {urlsplit(url).netloc for url in urls} - {gw.address, urlsplit(run.origin).netloc}
    assert others == set(), (others, run.describe())


def header_names(value: str | None) -> set[str]:
    return {name.strip().lower() for name in (value or "").split(",") if name.strip()}


async def test_the_browser_sdk_logs_in_from_a_listed_origin(setup: Setup) -> None:
    gw, origin = setup.gw, setup.origins.allowed
    assert origin != gw.url  # a different origin: every gateway call is cross-origin
    run = await run_page(setup, origin, "browser-ann", "listed-origin")
    result = run.result

    # Login succeeded in the browser: the SDK holds an access token for this user.
    assert result["ok"] is True and result["error"] is None, run.describe()
    assert result["login"] is True and result["sessionState"] == "established", run.describe()
    token = result["token"]["accessToken"]
    assert token.count(".") == 2, run.describe()
    status, body = await gw.call("GET", "/api/v3/sessions", token=token)
    assert status == 200 and body["valid"] is True and body["userId"] == "browser-ann", body
    # ... from the gateway's answer, which the browser was allowed to read.
    posted = run.traffic.answered("POST", SESSIONS)
    assert [p["status"] for p in posted] == [200], run.describe()
    sent, answer = json.loads(posted[0]["body"]), json.loads(posted[0]["response"])
    assert (sent["userId"], sent["displayName"], sent["deviceInfo"]["kind"]) == (
        "browser-ann", "browser-ann (browser SDK e2e)", "web"), sent
    assert answer["accessToken"] == token, run.describe()
    [user] = answer["users"]
    assert (user["userId"], user["displayName"]) == ("browser-ann", sent["displayName"])
    assert result["user"] == {"_id": user["_id"], "userId": "browser-ann",
                              "path": user["path"]}, run.describe()

    # The browser's preflight for the login was answered by the gateway, origin echoed.
    preflights = run.traffic.preflights(SESSIONS)
    assert preflights, run.describe()
    for preflight in preflights:
        assert preflight["requestHeaders"].get("origin") == origin, preflight
        assert preflight.get("status") == 204, preflight
        answer = preflight["responseHeaders"]
        assert answer.get("access-control-allow-origin") == origin, preflight
        assert answer.get("access-control-allow-credentials") == "true", preflight
        assert "POST" in answer.get("access-control-allow-methods", ""), preflight
        asked = header_names(preflight["requestHeaders"].get("access-control-request-headers"))
        assert SDK_LOGIN_HEADERS <= asked, preflight  # the SDK's login is not "simple"
        assert asked <= header_names(answer.get("access-control-allow-headers")), preflight
    # ... by this gateway itself (its request ids), before any credential or policy rule.
    answered = await logged(gw, run, "OPTIONS", SESSIONS)
    assert answered and {(line["status"], line["route"]) for line in answered} == {
        (204, "cors-preflight")}, answered
    assert {p["responseHeaders"].get("x-request-id") for p in preflights} <= {
        line["requestId"] for line in answered}, (preflights, answered)
    # The login's own answer was readable by the page: origin echoed there too.
    assert posted[0]["headers"].get("access-control-allow-origin") == origin, run.describe()
    assert posted[0]["headers"].get("access-control-allow-credentials") == "true"
    assert [line["status"] for line in await logged(gw, run, "POST", SESSIONS)] == [200]

    # The proxied call the SDK makes after login works cross-origin: the SDK's own GET and
    # the page's second one both reached the upstream with the user's identity, and the
    # page could read the answer.
    assert result["chatSettings"] == {"status": 200, "data": CHAT_SETTINGS}, run.describe()
    chat = run.traffic.answered("GET", CHAT)
    assert len(chat) >= 2, run.describe()
    for answer in chat:
        assert answer["status"] == 200, run.describe()
        assert answer["headers"].get("access-control-allow-origin") == origin, run.describe()
    chat_preflights = run.traffic.preflights(CHAT)
    assert chat_preflights, run.describe()  # Authorization makes it non-simple
    for preflight in chat_preflights:
        assert preflight.get("status") == 204, preflight
        assert preflight["responseHeaders"].get("access-control-allow-origin") == origin
        assert "authorization" in header_names(
            preflight["responseHeaders"].get("access-control-allow-headers")), preflight
    upstream_chat = upstream_seen(gw, run, CHAT)
    assert len(upstream_chat) == len(chat), gw.upstream.paths()
    assert {r["headers"].get("x-gateway-user-id") for r in upstream_chat} == {"browser-ann"}
    chat_log = await logged(gw, run, "GET", CHAT, at_least=len(chat))
    assert {line["status"] for line in chat_log} == {200}, chat_log
    assert {line["principal"].split(":")[-1] for line in chat_log} == {"browser-ann"}

    # Realtime: socket.io and MQTT over WebSockets to the gateway (no CORS for those, but
    # they carry the page's Origin), credentials checked, forwarded upstream.
    assert result["realtime"] == {"socketioConnected": True, "mqttConnected": True}, (
        run.describe())
    # The query token was the gateway's to check: the upstream sees the rest only.
    assert [c.get("token") for c in gw.upstream.socketio_connects] == [None]
    assert [(c["username"], c["password"]) for c in gw.upstream.mqtt_connects] == [
        (user["_id"], token)]
    assert sorted(urlsplit(url).path for url in run.traffic.websockets) == [
        "/mqtt", "/socket.io/"], run.describe()

    assert run.traffic.page_errors == [], run.describe()
    assert run.traffic.failures == [], run.describe()
    assert not [c for c in run.traffic.console if c.startswith("error:")], run.describe()
    assert_loopback_only(run, gw)


async def test_a_page_from_an_unlisted_origin_cannot_log_in(setup: Setup) -> None:
    gw, origin = setup.gw, setup.origins.unlisted
    run = await run_page(setup, origin, "browser-bob", "unlisted-origin")
    result = run.result

    # The SDK's login failed in the browser, as a network error: the browser refused it.
    assert result["ok"] is False and result.get("login") is None, run.describe()
    assert result["error"] is not None, run.describe()
    assert "Network Error" in result["error"]["message"], run.describe()
    assert result["error"]["status"] is None, run.describe()  # no answer reached the page
    blocked = [c for c in run.traffic.console
               if "blocked by CORS policy" in c and f"'{origin}'" in c and SESSIONS in c]
    assert blocked, run.describe()

    # Why: the gateway did not grant the preflight (no Allow-Origin for this origin) ...
    preflights = run.traffic.preflights(SESSIONS)
    assert preflights, run.describe()
    for preflight in preflights:
        assert preflight["requestHeaders"].get("origin") == origin, preflight
        assert not {h for h in preflight.get("responseHeaders", {})
                    if h.startswith("access-control-")}, preflight
    failed = run.traffic.sent("POST", SESSIONS)
    assert [f.get("corsError", {}).get("corsError") for f in failed] == [
        "PreflightMissingAllowOriginHeader"], run.describe()
    assert run.traffic.answered("POST", SESSIONS)[0]["status"] is None, run.describe()
    answered = await logged(gw, run, "OPTIONS", SESSIONS)
    assert answered and all(line["route"] != "cors-preflight" for line in answered), answered
    # ... so the browser never sent the login itself, and nothing reached the upstream.
    await asyncio.sleep(0.3)  # one more access-log flush
    assert await logged(gw, run, "POST", SESSIONS, wait=0) == [], gw.gateway.log()[-3000:]
    assert gw.upstream.requests[run.upstream_mark:] == []
    assert run.traffic.websockets == [], run.describe()

    # Not the key nor the user: the same login without a browser (no CORS) succeeds.
    status, body = await gw.call("POST", SESSIONS, headers={"x-api-key": setup.network["apiKey"]},
                                 json_body={"userId": "browser-bob", "deviceId": "no-browser"})
    assert status == 200 and body["users"][0]["userId"] == "browser-bob", body

    assert_loopback_only(run, gw)

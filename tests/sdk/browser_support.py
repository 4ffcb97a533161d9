"""Helpers for tests/sdk/test_browser_sdk.py: the SDK's browser build in headless Chromium.

- `PageOrigins`: one loopback aiohttp app serving tests/sdk/browser/ (the page) and the
  SDK's UMD bundle from node_modules, on two ports, i.e. two origins other than the
  gateway's: one the gateway lists in `server.cors_origins`, one it does not.
- `chromium()`: Playwright's async API on the system Chromium, with the flags of
  tests/browser/conftest.py. Missing Playwright or Chromium skips with the reason, and
  fails instead under GATEWAY_REQUIRE_BROWSER=1 (CI).
- `Traffic`: what one browser context asked for: every request and its answer or failure,
  WebSockets, console messages, and (from the DevTools protocol) the CORS preflights with
  the headers of their answers, which Playwright's own events do not show.
- `access_log()`: the gateway's access-log lines (JSON on its stderr).

Why no `page.route`: once any route is registered Playwright intercepts every request and
answers CORS preflights itself (204 echoing the Origin, credentials allowed), so the
gateway would never see them and the unlisted origin would pass its preflight. Loopback
is enforced instead by the browser's resolver (`--host-resolver-rules`: every host but
localhost and 127.0.0.1 is unresolvable) and checked on the recorded traffic.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.browser.conftest import BROWSER_REQUIRED, CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, CDPSession, Page

PAGE_DIR = Path(__file__).resolve().parent / "browser"
# The SDK's browser build: an IIFE bundle (`var Amity = ...`, everything inlined; the
# package's "unpkg" entry). index.esm.js imports bare module names and index.cjs.js is Node's.
UMD_BUNDLE = Path("node_modules") / "@amityco" / "ts-sdk" / "dist" / "index.umd.js"
SDK_REQUIRED = os.environ.get("GATEWAY_REQUIRE_SDK") == "1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
# Every host resolves to nothing except loopback (the rules apply to IP literals too).
RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"


def sdk_unavailable(reason: str) -> None:
    if SDK_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_SDK=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def browser_unavailable(reason: str) -> None:
    if BROWSER_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def umd_bundle(sdk_dir: Path) -> Path:
    bundle = sdk_dir / UMD_BUNDLE
    if not bundle.is_file():
        sdk_unavailable(f"the SDK's browser build {bundle} is missing (npm ci in tests/sdk)")
    return bundle


def playwright_async_api() -> ModuleType:
    try:
        return importlib.import_module("playwright.async_api")
    except ImportError as exc:
        browser_unavailable(f"Playwright is not installed ({exc}): pip install playwright")
        raise


def require_chromium() -> ModuleType:
    """playwright.async_api, once Playwright and the Chromium binary are known present."""
    api = playwright_async_api()
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        browser_unavailable(f"Chromium not found at {CHROMIUM} (set GATEWAY_CHROMIUM)")
    return api


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless system Chromium, closed on exit."""
    api = require_chromium()
    async with api.async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, RESOLVER_RULES],
                headless=True, timeout=20_000)
        except api.Error as exc:
            browser_unavailable(f"Chromium at {CHROMIUM} did not start: {exc}")
            raise
        try:
            yield browser
        finally:
            await browser.close()


def page_app(bundle: Path) -> web.Application:
    """The test page, its script and the SDK bundle (read once, here); nothing else (404)."""
    files = {
        "/": ((PAGE_DIR / "index.html").read_bytes(), "text/html"),
        "/app.js": ((PAGE_DIR / "app.js").read_bytes(), "text/javascript"),
        "/sdk/index.umd.js": (bundle.read_bytes(), "text/javascript"),
    }

    async def serve(request: web.Request) -> web.StreamResponse:
        found = files.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(body=body, content_type=content_type,
                            headers={"Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    return app


@dataclass
class PageOrigins:
    allowed: str  # listed in the gateway's server.cors_origins
    unlisted: str  # not listed


@asynccontextmanager
async def page_origins(bundle: Path) -> AsyncIterator[PageOrigins]:
    """The page on two loopback ports: two origins, neither of them the gateway's."""
    runner = web.AppRunner(page_app(bundle), access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        for _ in range(2):
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        allowed, unlisted = (f"http://127.0.0.1:{address[1]}" for address in runner.addresses)
        yield PageOrigins(allowed=allowed, unlisted=unlisted)
    finally:
        await runner.cleanup()


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOOPBACK_HOSTS


@dataclass
class Traffic:
    """Everything one browser context asked for, as Playwright and DevTools saw it."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # DevTools Network events by request id: the preflights Chromium sends on its own.
    devtools: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def watch(self, context: BrowserContext, page: Page) -> CDPSession:
        async def on_response(response: Any) -> None:
            for item in self.requests:
                if item["request"] is response.request:
                    item["status"] = response.status
                    item["headers"] = await response.all_headers()
                    if item["type"] in ("xhr", "fetch"):
                        try:
                            item["response"] = await response.text()
                        except Exception as exc:  # e.g. the context closed meanwhile
                            item["response"] = f"<unreadable: {exc}>"

        def on_request(request: Any) -> None:
            self.requests.append({"request": request, "method": request.method,
                                  "url": request.url, "type": request.resource_type,
                                  "body": request.post_data, "status": None, "headers": {}})

        context.on("request", on_request)
        context.on("response", on_response)
        context.on("requestfailed", lambda request: self.failures.append(
            {"method": request.method, "url": request.url, "failure": request.failure}))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")

        def sent(event: dict[str, Any]) -> None:
            request = event["request"]
            self.devtools.setdefault(event["requestId"], {}).update(
                method=request["method"], url=request["url"], type=event.get("type"),
                initiator=(event.get("initiator") or {}).get("type"),
                requestHeaders={k.lower(): v for k, v in request.get("headers", {}).items()})

        def answered(event: dict[str, Any]) -> None:
            response = event["response"]
            self.devtools.setdefault(event["requestId"], {}).update(
                status=response["status"], type=event.get("type"),
                responseHeaders={k.lower(): v for k, v in response.get("headers", {}).items()})

        def failed(event: dict[str, Any]) -> None:
            self.devtools.setdefault(event["requestId"], {}).update(
                failed=event.get("errorText"), corsError=event.get("corsErrorStatus"),
                blockedReason=event.get("blockedReason"))

        cdp.on("Network.requestWillBeSent", sent)
        cdp.on("Network.responseReceived", answered)
        cdp.on("Network.loadingFailed", failed)
        return cdp

    def urls(self) -> list[str]:
        return ([r["url"] for r in self.requests] + self.websockets
                + [d["url"] for d in self.devtools.values() if "url" in d])

    def preflights(self, url_part: str = "") -> list[dict[str, Any]]:
        """OPTIONS preflights Chromium sent (DevTools type "Preflight" or initiator
        "preflight"), whose URL contains `url_part`."""
        return [d for d in self.devtools.values()
                if d.get("method") == "OPTIONS" and url_part in d.get("url", "")
                and (d.get("type") == "Preflight" or d.get("initiator") == "preflight")]

    def sent(self, method: str, path: str) -> list[dict[str, Any]]:
        """DevTools' record of the requests (not preflights) for `method path`."""
        return [d for d in self.devtools.values()
                if d.get("method") == method and urlsplit(d.get("url", "")).path == path
                and d.get("type") != "Preflight"]

    def answered(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests
                if r["method"] == method and urlsplit(r["url"]).path == path]

    def describe(self) -> str:
        shown = {
            "requests": [{k: v for k, v in r.items() if k != "request"} for r in self.requests],
            "failures": self.failures, "websockets": self.websockets,
            "console": self.console, "pageErrors": self.page_errors,
            "devtools": list(self.devtools.values()),
        }
        return json.dumps(shown, indent=1, default=str)[:12000]


def access_log(log_text: str) -> list[dict[str, Any]]:
    """The access-log lines in a gateway's output: one JSON object per request, among the
    other (also JSON) log records, which have no `requestId` and `status`."""
    lines = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and {"requestId", "method", "status"} <= set(record):
            lines.append(record)
    return lines

"""End-to-end tests of the admin console in a real browser against a real gateway.

One `gateway serve` process (HTTP and HTTPS) serves the whole package; each test makes
its own network and console users with the CLI, so tests never share state. Headless
Chromium is driven with Playwright's sync API: the tests are plain functions, and the
gateway's async helpers (tests/process.py) run on an event loop of their own in a
background thread.

Without Playwright or Chromium the tests are skipped with the reason, unless
GATEWAY_REQUIRE_BROWSER=1 (CI), which turns that into a failure. Screenshots of every
step go to tests/browser/screenshots/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.support import write_config

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

T = TypeVar("T")

BROWSER_REQUIRED = os.environ.get("GATEWAY_REQUIRE_BROWSER") == "1"
CHROMIUM = os.environ.get("GATEWAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# The console's pictures in the docs: rewritten only when asked, since every run differs
# (keys, times) and a test run should not leave the work tree changed.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
UPDATE_DOCS = os.environ.get("GATEWAY_UPDATE_DOCS_SCREENSHOTS") == "1"
DOCS_VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
PASSWORD = "correct horse battery"


def unavailable(reason: str) -> None:
    if BROWSER_REQUIRED:
        pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def playwright_api() -> ModuleType:
    """playwright.sync_api, for the test modules to call at import: a missing Playwright
    skips the module with the reason (fails it under GATEWAY_REQUIRE_BROWSER=1)."""
    try:
        return importlib.import_module("playwright.sync_api")
    except ImportError as exc:
        reason = f"Playwright is not installed ({exc}): pip install playwright"
        if BROWSER_REQUIRED:
            pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


class BackgroundLoop:
    """An event loop on its own thread, for the async process helpers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="browser-tests-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Network:
    network_id: str
    api_key: str
    admins: dict[str, str] = field(default_factory=dict)  # username -> role


@dataclass
class Gateway:
    process: GatewayProcess
    loop: BackgroundLoop
    config: Path
    folder: Path

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.process.https_port}"

    def cli(self, *args: str, stdin: bytes | None = None) -> dict[str, Any]:
        code, out, err = self.loop.run(run_cli(*args, "--config", str(self.config), stdin=stdin))
        assert code == 0, err
        answer: dict[str, Any] = json.loads(out)
        return answer

    def network(self, **admins: str) -> Network:
        """A new network with console users (username=role), all with PASSWORD."""
        created = self.cli("network", "create", "--name", "console-test")
        network = Network(created["networkId"], created["apiKey"], dict(admins))

        async def create_all() -> None:
            results = await asyncio.gather(*(
                run_cli("admin", "create", "--network", network.network_id,
                        "--username", username, "--role", role, "--password-stdin",
                        "--config", str(self.config), stdin=f"{PASSWORD}\n".encode())
                for username, role in admins.items()
            ))
            for code, _out, err in results:
                assert code == 0, err

        self.loop.run(create_all())
        return network


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("console-gateway")
    config = write_config(folder)
    loop = BackgroundLoop()
    process = GatewayProcess(config)
    try:
        loop.run(process.start())
        yield Gateway(process, loop, config, folder)
    finally:
        if process.proc is not None:
            loop.run(process.stop())
        loop.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    api = playwright_api()
    Error, sync_playwright = api.Error, api.sync_playwright
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        unavailable(f"Chromium not found at {CHROMIUM} (set GATEWAY_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Error as exc:
            unavailable(f"Chromium at {CHROMIUM} did not start: {exc}")
            raise
        yield launched
        launched.close()


@dataclass
class Console:
    """One browser context (its own cookies and storage) on the console."""

    gateway: Gateway
    context: BrowserContext
    page: Page
    name: str
    base: str
    problems: list[str]
    shots: int = 0

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.base}/console/{route}")

    def shot(self, step: str) -> Path:
        self.shots += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{step}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def doc_shot(self, name: str) -> Path:
        """The viewport at 1280x800 as docs/console/<name>.png (under GATEWAY_UPDATE_DOCS_
        SCREENSHOTS=1; otherwise into the git-ignored screenshots folder, to look at)."""
        folder = DOCS_SCREENSHOTS if UPDATE_DOCS else SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png" if UPDATE_DOCS else folder / f"{self.name}-doc-{name}.png"
        before = self.page.viewport_size
        self.page.set_viewport_size(DOCS_VIEWPORT)
        try:
            self.page.screenshot(path=path, animations="disabled", caret="hide")
        finally:
            if before is not None:
                self.page.set_viewport_size(before)
        return path

    def sign_in(self, network: Network, username: str, password: str = PASSWORD) -> None:
        from playwright.sync_api import expect

        page = self.page
        if not page.url.startswith(f"{self.base}/console"):
            self.open()
        page.get_by_label("API key", exact=True).fill(network.api_key)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".who .me")).to_have_text(username)

    def go(self, title: str) -> None:
        """Follow a Settings link by its name and wait for the page heading."""
        from playwright.sync_api import expect

        self.page.get_by_role("navigation", name="Settings").get_by_role(
            "link", name=title, exact=True).click()  # "Users" is in "Admin Users" too
        expect(self.page.get_by_role("heading", level=1)).to_have_text(title)

    def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        """A request with this context's cookies (what the page itself would send)."""
        response = self.context.request.fetch(f"{self.base}{path}", method=method, **kwargs)
        try:
            body: Any = response.json()
        except Exception:
            body = response.text()
        return response.status, body, response.headers


class Consoles:
    """Makes consoles for one test; closes them and checks for page errors at the end."""

    def __init__(self, gateway: Gateway, browser: Browser, name: str) -> None:
        self.gateway, self.browser, self.name = gateway, browser, name
        self.opened: list[Console] = []

    def new(self, *, https: bool = False, client_cert: tuple[Path, Path] | None = None,
            clipboard: bool = False, options: dict[str, Any] | None = None) -> Console:
        """`options`: more browser context options (`timezone_id`, `locale`, ...)."""
        base = self.gateway.https_url if https else self.gateway.url
        options = {"viewport": {"width": 1280, "height": 900}, **(options or {})}
        if https:
            options["ignore_https_errors"] = True  # the dev CA is not in the browser's store
        if client_cert is not None:
            cert, key = client_cert
            options["client_certificates"] = [
                {"origin": base, "certPath": str(cert), "keyPath": str(key)}]
        context = self.browser.new_context(**options)
        if clipboard:
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        context.set_default_timeout(10_000)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda message: problems.append(f"console: {message.text}")
                if message.type == "error" and not _expected(message.text) else None)
        suffix = "" if not self.opened else f"-{len(self.opened) + 1}"
        console = Console(self.gateway, context, page, f"{self.name}{suffix}", base, problems)
        self.opened.append(console)
        return console

    def close(self) -> list[str]:
        problems = [problem for console in self.opened for problem in console.problems]
        for console in self.opened:
            console.context.close()
        return problems


def _expected(text: str) -> bool:
    # Chromium logs every non-2xx fetch as an error; those answers are part of the tests.
    return bool(re.search(r"Failed to load resource: the server responded with a status", text))


@pytest.fixture
def consoles(browser: Browser, gateway: Gateway,
             request: pytest.FixtureRequest) -> Iterator[Consoles]:
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    for old in SCREENSHOTS.glob(f"{name}*.png"):
        old.unlink()
    made = Consoles(gateway, browser, name)
    yield made
    problems = made.close()
    assert not problems, "the console logged errors:\n" + "\n".join(problems)


@pytest.fixture
def network(gateway: Gateway) -> Network:
    """A network with a super admin, two admins and a moderator."""
    return gateway.network(boss="super-admin", ann="admin", bob="admin", mo="moderator")


def make_csr(folder: Path, name: str) -> tuple[str, Path]:
    """A P-256 key and CSR made by openssl, as an operator would: (CSR PEM, key path)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, csr = folder / f"{name}.key", folder / f"{name}.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr)],
        check=True, capture_output=True, timeout=30,
    )
    return csr.read_text(), key

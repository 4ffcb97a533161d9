"""Audit Log: pages of entries newest first, filters sent to the gateway, errors shown."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.browser.calls import admin_token, call, console_login, user_session
from tests.browser.conftest import Consoles, Gateway, Network, playwright_api

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

expect = playwright_api().expect

USERS = [f"u{n:02d}" for n in range(1, 23)]


def _scene(gateway: Gateway, network: Network, *, failures: int = 0) -> None:
    """27 entries, 28 with failures, once ann has signed in in the browser (the newest):
    user.unban and sessions.revoke_user by bob, 22 user.ban by ann, two console.login,
    and ann's failed sign-ins folded into one entry (the oldest). Failures are few: the
    tests share one gateway, whose limits count them per client address."""
    for _ in range(failures):
        assert console_login(gateway, network, "ann", "not the password")[0] == 401
    bob = admin_token(gateway, network, "bob")
    ann = admin_token(gateway, network, "ann")
    for user in USERS:
        user_session(gateway, network, user)
        assert call(gateway, "POST", f"/api/v3/users/{user}/ban", token=ann)[0] == 200
    assert call(gateway, "DELETE", "/api/v4/sessions/users/u01", token=bob)[0] == 200
    assert call(gateway, "DELETE", "/api/v3/users/u02/ban", token=bob)[0] == 200


def _entries(first: int, last: int, filtered: bool = False) -> str:
    """The page's summary line."""
    matching = ", matching the filters" if filtered else ""
    return f"Entries {first}\N{EN DASH}{last}, newest first{matching}."


def _rows(page: Page) -> Locator:
    return page.locator("table.audit tbody tr")


def _column(page: Page, name: str) -> list[str]:
    return [text.strip() for text in page.locator(f"table.audit tbody td.{name}").all_inner_texts()]


def test_pages_filters_and_folded_failures(consoles: Consoles, gateway: Gateway,
                                           network: Network) -> None:
    _scene(gateway, network, failures=2)
    console = consoles.new()
    page = console.page
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url)
            if "/api/v3/audit-logs" in request.url else None)
    console.sign_in(network, "ann")
    console.go("Audit Log")
    summary = page.locator(".page-summary")
    newer = page.get_by_role("button", name="Newer")
    older = page.get_by_role("button", name="Older")

    # Page 1: the newest 20, each with who, role, action, target, address and request id.
    expect(summary).to_have_text(_entries(1, 20))
    expect(_rows(page)).to_have_count(20)
    first = _rows(page).first
    expect(first.locator(".action")).to_have_text("console.login")
    expect(first.locator(".actor")).to_have_text("ann")
    expect(first.locator(".actor-role")).to_have_text("Admin")
    second = _rows(page).nth(1)
    for cell, text in (("actor", "bob"), ("action", "user.unban"), ("target", "u02"),
                       ("source", "127.0.0.1")):
        expect(second.locator(f".{cell}")).to_have_text(text)
    _status, newest, _ = console.api("GET", "/api/v3/audit-logs?limit=2")
    expect(second.locator(".request-id")).to_have_text(newest["auditLogs"][1]["requestId"])
    expect(second.locator("time")).to_have_attribute("datetime", newest["auditLogs"][1]["time"])
    expect(newer).to_be_disabled()
    expect(older).to_be_enabled()
    expect(page.locator(".page-number")).to_have_text("Page 1")
    console.shot("page-1")

    # Page 2: the rest, down to the folded failed sign-ins with their count.
    older.click()
    expect(summary).to_have_text(_entries(21, 28))
    expect(_rows(page)).to_have_count(8)
    last = _rows(page).last
    expect(last.locator(".action")).to_have_text("console.login_failed 2 attempts")
    expect(last.locator(".count")).to_have_text("2 attempts")
    expect(last.locator(".actor-role")).to_have_text("—")  # nobody was signed in
    expect(older).to_be_disabled()
    expect(newer).to_be_focused()  # the pressed button went disabled: focus stays in the pager
    expect(page.locator(".page-number")).to_have_text("Page 2")
    console.shot("page-2")
    newer.click()
    expect(summary).to_have_text(_entries(1, 20))
    expect(_rows(page).first.locator(".action")).to_have_text("console.login")

    # Filters are the gateway's: every page is a page of matches.
    search = page.get_by_role("search", name="Filter the audit log")
    search.get_by_label("Action").fill("user")
    search.get_by_role("button", name="Apply filters").click()
    expect(summary).to_have_text(_entries(1, 20, filtered=True))
    expect(summary).to_be_focused()
    assert "action=user" in sent[-1] and "before" not in sent[-1]
    older.click()
    expect(summary).to_have_text(_entries(21, 23, filtered=True))
    assert _column(page, "target") == ["u03", "u02", "u01"]
    assert set(_column(page, "action")) == {"user.ban"}
    search.get_by_label("Action").fill("")
    search.get_by_label("Username").fill("bob")
    search.get_by_label("Username").press("Enter")
    expect(page.locator(".page-number")).to_have_text("Page 1")  # a new search starts over
    expect(summary).to_have_text(_entries(1, 3, filtered=True))
    assert _column(page, "action") == ["user.unban", "sessions.revoke_user", "console.login"]
    console.shot("filtered")
    search.get_by_label("Action").fill("certificate")
    search.get_by_role("button", name="Apply filters").click()
    expect(summary).to_have_text("No entries match these filters.")
    expect(page.locator("table.audit")).to_have_count(0)
    search.get_by_role("button", name="Clear filters").click()
    expect(summary).to_have_text(_entries(1, 20))
    expect(search.get_by_label("Username")).to_have_value("")
    expect(search.get_by_label("Action")).to_be_focused()


def test_errors_are_shown_and_the_page_stays(consoles: Consoles, gateway: Gateway,
                                             network: Network) -> None:
    _scene(gateway, network)
    console = consoles.new()
    page = console.page
    console.sign_in(network, "ann")
    console.go("Audit Log")
    summary = page.locator(".page-summary")
    expect(summary).to_have_text(_entries(1, 20))
    # The gateway refuses a filter: its message, in an alert.
    search = page.get_by_role("search", name="Filter the audit log")
    search.get_by_label("Action").fill("x" * 201)
    search.get_by_role("button", name="Apply filters").click()
    alert = page.locator(".page > .error[role=alert]")
    expect(alert).to_have_text("action must be 1 to 200 printable characters")
    search.get_by_label("Action").fill("")
    search.get_by_role("button", name="Apply filters").click()
    expect(alert).to_be_hidden()

    # The store is away when the next page is asked for: said, and page 1 stays.
    def unavailable(route: Route) -> None:
        route.fulfill(status=503, content_type="application/json", body=json.dumps(
            {"status": "error", "code": 500000, "message": "store unavailable"}))

    page.route("**/api/v3/audit-logs?*before=*", unavailable)
    page.get_by_role("button", name="Older").click()
    expect(alert).to_have_text("store unavailable")
    expect(page.locator(".page-number")).to_have_text("Page 1")
    expect(_rows(page)).to_have_count(20)
    console.shot("error")
    page.unroute("**/api/v3/audit-logs?*before=*")
    page.get_by_role("button", name="Older").click()
    expect(page.locator(".page-number")).to_have_text("Page 2")
    expect(alert).to_be_hidden()


def test_a_moderator_is_told_the_log_is_for_admins(consoles: Consoles,
                                                   network: Network) -> None:
    console = consoles.new()
    page = console.page
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url)
            if "/api/v3/audit-logs" in request.url else None)
    console.sign_in(network, "mo")
    console.go("Audit Log")
    expect(page.get_by_text("only admins of the network can read the audit log")).to_be_visible()
    expect(page.get_by_role("search")).to_have_count(0)
    assert asked == []  # not asked for an answer known to be 403

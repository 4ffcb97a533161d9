"""Every console page, as a new admin of a lived-in network sees it: each must load
without an error, and each has its picture in docs/console/ (1280x800).

GATEWAY_UPDATE_DOCS_SCREENSHOTS=1 rewrites those pictures; otherwise they go to the
git-ignored tests/browser/screenshots/ to look at.
"""

from __future__ import annotations

from tests.browser.calls import admin_token, call, console_login, user_session
from tests.browser.conftest import (
    DOCS_SCREENSHOTS,
    UPDATE_DOCS,
    Consoles,
    Gateway,
    Network,
    playwright_api,
)

expect = playwright_api().expect

# Navigation entry -> its picture; the sign-in page and the admin token dialog besides.
PAGES = {
    "Admin Users": "admin-users",
    "Security": "security",
    "Push Notifications": "push-notifications",
    "Users": "users",
    "Audit Log": "audit-log",
}
PICTURES = ("sign-in", *PAGES.values(), "admin-token")


def test_every_page_loads_and_has_its_picture(consoles: Consoles, gateway: Gateway,
                                              network: Network) -> None:
    # A little history: users, a ban, a revocation, two failed sign-ins in one minute.
    for user, name in (("gina", "Gina Lollo"), ("hank", "Hank Moody")):
        user_session(gateway, network, user, name)
    bob = admin_token(gateway, network, "bob")
    call(gateway, "POST", "/api/v3/users/gina/ban", token=bob)
    call(gateway, "DELETE", "/api/v4/sessions/users/hank", token=bob)
    for _ in range(2):
        console_login(gateway, network, "mo", "not the password")

    # The pictures do not depend on where they are taken.
    console = consoles.new(options={"timezone_id": "UTC", "locale": "en-US"})
    page = console.page
    console.open()
    expect(page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    console.doc_shot("sign-in")
    console.sign_in(network, "ann")

    links = page.get_by_role("navigation", name="Settings").get_by_role("link")
    assert links.all_inner_texts() == list(PAGES)  # a new page needs its picture here
    for title, picture in PAGES.items():
        console.go(title)
        expect(page.get_by_role("link", name=title, exact=True)).to_have_attribute(
            "aria-current", "page")
        if title == "Admin Users":
            expect(page.locator("tbody tr")).to_have_count(4)
        elif title == "Security":
            expect(page.get_by_role("switch", name="Secure mode")).to_be_visible()
        elif title == "Push Notifications":
            expect(page.get_by_role("switch", name="New post", exact=True)).to_be_enabled()
        elif title == "Users":
            page.get_by_label("User ID").fill("gina")
            page.get_by_role("button", name="Look up").click()
            expect(page.locator(".ban-state")).to_have_text("Banned")
        elif title == "Audit Log":
            expect(page.locator(".count")).to_have_text("2 attempts")
        expect(page.get_by_role("alert")).to_have_count(0)
        console.doc_shot(picture)

    console.go("Admin Users")
    page.get_by_role("button", name="Admin token options for ann (you)").click()
    page.get_by_role("menuitem", name="Show admin token").click()
    expect(page.get_by_role("dialog", name="Your admin token").get_by_label(
        "Admin token", exact=True)).to_have_attribute("type", "password")  # no secret shown
    console.doc_shot("admin-token")

    for picture in PICTURES:
        path = DOCS_SCREENSHOTS / f"{picture}.png"
        assert path.is_file(), f"{path} is missing: run with GATEWAY_UPDATE_DOCS_SCREENSHOTS=1"
        if UPDATE_DOCS:
            assert path.stat().st_size < 400_000, f"{path} is too large for the docs"

"""Users: look an end user up, ban and lift the ban, revoke every session; errors shown."""

from __future__ import annotations

import json

from tests.browser.calls import admin_token, call, user_session
from tests.browser.conftest import Console, Consoles, Gateway, Network, playwright_api

expect = playwright_api().expect


def test_look_up_ban_lift_and_revoke(consoles: Consoles, gateway: Gateway,
                                     network: Network) -> None:
    gina = user_session(gateway, network, "gina", "Gina Lollo")
    console = consoles.new()
    page = console.page
    writes: list[tuple[str, str, str | None]] = []
    page.on("request", lambda request: writes.append(
        (request.method, request.url, request.headers.get("content-type")))
        if request.method not in ("GET", "HEAD") else None)
    console.sign_in(network, "ann")
    console.go("Users")
    expect(page.get_by_role("link", name="Users", exact=True)).to_have_attribute(
        "aria-current", "page")
    lookup = page.get_by_role("search", name="Look a user up")
    user_id = lookup.get_by_label("User ID")

    # Nothing typed: said next to the field, nothing sent.
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("alert")).to_have_text("Enter a user ID.")
    expect(user_id).to_have_attribute("aria-invalid", "true")
    expect(user_id).to_be_focused()
    # An unknown user: the gateway's answer, next to the field.
    user_id.fill("nobody")
    user_id.press("Enter")
    expect(lookup.get_by_role("alert")).to_have_text("userId Not Found.")
    expect(page.locator(".user-result section")).to_have_count(0)
    console.shot("not-found")

    user_id.fill("gina")
    lookup.get_by_role("button", name="Look up").click()
    card = page.get_by_role("region", name="User gina")
    expect(card.get_by_role("heading", name="User gina")).to_be_focused()
    expect(lookup.get_by_role("alert")).to_be_hidden()
    expect(user_id).not_to_have_attribute("aria-invalid", "true")
    expect(card.locator(".display-name")).to_have_text("Gina Lollo")
    expect(card.locator(".ban-state")).to_have_text("Not banned")
    console.shot("found")

    # Ban: asked first (Cancel is the default), then done and shown.
    card.get_by_role("button", name="Ban user gina").click()
    confirm = page.get_by_role("dialog", name="Ban gina?")
    expect(confirm.locator(".confirm-user")).to_have_text("gina")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(confirm).to_have_count(0)
    assert call(gateway, "GET", "/api/v3/sessions", token=gina)[0] == 200  # nothing done
    card.get_by_role("button", name="Ban user gina").click()
    page.get_by_role("dialog", name="Ban gina?").get_by_role("button", name="Ban user").click()
    expect(page.get_by_role("status").filter(has_text="gina is banned.")).to_be_visible()
    expect(card.locator(".ban-state")).to_have_text("Banned")
    lift = card.get_by_role("button", name="Lift the ban on gina")
    expect(lift).to_be_focused()  # redrawn; focus stayed on the same control
    console.shot("banned")
    status, body = call(gateway, "GET", "/api/v3/sessions", token=gina)
    assert (status, body["message"]) == (403, "User is global banned.")

    lift.click()
    page.get_by_role("dialog", name="Lift the ban on gina?").get_by_role(
        "button", name="Lift the ban").click()
    expect(page.get_by_role("status").filter(has_text="The ban on gina was lifted.")
           ).to_be_visible()
    expect(card.locator(".ban-state")).to_have_text("Not banned")
    assert call(gateway, "GET", "/api/v3/sessions", token=gina)[0] == 200  # tokens kept

    # Revoke every session: the token stops working.
    card.get_by_role("button", name="Revoke sessions of gina").click()
    confirm = page.get_by_role("dialog", name="Revoke every session of gina?")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    console.shot("revoke-confirm")
    confirm.get_by_role("button", name="Revoke sessions").click()
    expect(page.get_by_role("status").filter(has_text="Every session of gina was revoked.")
           ).to_be_visible()
    status, body = call(gateway, "GET", "/api/v3/sessions", token=gina)
    assert (status, body["message"]) == (401, "Invalid token")

    # Every write went as JSON (the gateway refuses cookie writes that are not).
    assert [(method, url.split("/api/", 1)[1], kind) for method, url, kind in writes
            if "/api/" in url] == [
        ("POST", "v3/users/gina/ban", "application/json"),
        ("DELETE", "v3/users/gina/ban", "application/json"),
        ("DELETE", "v4/sessions/users/gina", "application/json"),
    ]


def test_a_failed_action_is_shown_in_its_dialog(consoles: Consoles, gateway: Gateway,
                                                network: Network) -> None:
    user_session(gateway, network, "hank")
    console = consoles.new()
    page = console.page
    console.sign_in(network, "ann")
    console.go("Users")
    page.get_by_label("User ID").fill("hank")
    page.get_by_role("button", name="Look up").click()
    # The store goes away between the look-up and the ban.
    page.route("**/api/v3/users/hank/ban", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body=json.dumps({"status": "error", "code": 500000, "message": "store unavailable"}))
        if route.request.method == "POST" else route.fallback())
    page.get_by_role("button", name="Ban user hank").click()
    dialog = page.get_by_role("dialog", name="Ban hank?")
    dialog.get_by_role("button", name="Ban user").click()
    expect(dialog.get_by_role("alert")).to_have_text("store unavailable")
    expect(dialog.get_by_role("button", name="Ban user")).to_be_focused()
    console.shot("ban-failed")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator(".ban-state")).to_have_text("Not banned")
    assert call(gateway, "GET", "/api/v3/users/hank/ban",
                token=_token(console))[1]["users"][0]["isGlobalBanned"] is False


def test_a_moderator_looks_up_but_cannot_act(consoles: Consoles, gateway: Gateway,
                                             network: Network) -> None:
    user_session(gateway, network, "ivy")
    call(gateway, "POST", "/api/v3/users/ivy/ban", token=admin_token(gateway, network, "bob"))
    console = consoles.new()
    page = console.page
    console.sign_in(network, "mo")
    console.go("Users")
    expect(page.get_by_text("You are a moderator: you can look users up")).to_be_visible()
    page.get_by_label("User ID").fill("ivy")
    page.get_by_role("button", name="Look up").click()
    card = page.get_by_role("region", name="User ivy")
    expect(card.locator(".ban-state")).to_have_text("Banned")
    expect(card.get_by_role("button")).to_have_count(0)
    console.shot("moderator")


def _token(console: Console) -> str:
    """The admin token of the console's user (what its cookie stands for)."""
    token: str = console.api("GET", "/api/v1/admin-token")[1]["adminToken"]
    return token

"""Signing in and out; the Admin Users list; a moderator's read-only view."""

from __future__ import annotations

from tests.browser.conftest import Consoles, Network, playwright_api

expect = playwright_api().expect

def test_sign_in_shows_errors_then_signs_in_and_out(
    consoles: Consoles, network: Network
) -> None:
    console = consoles.new()
    page = console.page
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(request.url.split("/")[2]))
    console.open()
    expect(page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    # Empty fields: said next to each field, nothing sent.
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Enter the API key.")).to_be_visible()
    expect(page.get_by_text("Enter your username.")).to_be_visible()
    expect(page.get_by_label("API key", exact=True)).to_be_focused()
    # Remembering the API key is off until asked for: a shared computer keeps nothing.
    remember = page.get_by_label("Remember the API key on this device")
    expect(remember).not_to_be_checked()
    # A wrong password: the gateway's message, next to the form.
    page.get_by_label("API key", exact=True).fill(network.api_key)
    page.get_by_label("Username").fill("ann")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.locator("form .error[role=alert]:visible")
    expect(alert).to_have_text("Unauthorized: the API key, username or password is wrong.")
    expect(page.get_by_label("Password")).to_be_focused()
    console.shot("wrong-password")

    console.sign_in(network, "ann")
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin Users")
    expect(page.locator(".network-name")).to_contain_text("console-test")
    console.shot("signed-in")
    # The session is the HttpOnly cookie; no token in the page's storage.
    cookies = {cookie["name"]: cookie for cookie in console.context.cookies()}
    session = cookies["gateway_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    _status, token, _ = console.api("GET", "/api/v1/admin-token")
    storage = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert token["adminToken"] not in storage and cookies["gateway_console"]["value"] not in storage
    # A reload keeps the session.
    page.reload()
    expect(page.locator(".who .me")).to_have_text("ann")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status").filter(has_text="You have signed out.")).to_be_visible()
    # The API key was not kept on this device; the session is gone.
    expect(page.get_by_label("API key", exact=True)).to_have_value("")
    assert network.api_key not in page.evaluate("JSON.stringify({...localStorage})")
    assert console.api("GET", "/api/v3/admins")[0] == 401
    page.goto(f"{console.base}/console/#/settings/security")
    expect(page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    console.shot("signed-out")
    assert origins == {console.base.split("/")[2]}  # nothing fetched from anywhere else


def test_the_api_key_is_remembered_only_when_asked(consoles: Consoles, network: Network) -> None:
    console = consoles.new()
    page = console.page
    console.open()
    remember = page.get_by_label("Remember the API key on this device")
    expect(remember).not_to_be_checked()
    remember.check()
    console.sign_in(network, "ann")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key", exact=True)).to_have_value(network.api_key)
    expect(remember).to_be_checked()  # asked for once: kept until unticked
    remember.uncheck()
    console.sign_in(network, "ann")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key", exact=True)).to_have_value("")
    expect(remember).not_to_be_checked()


def test_admin_users_lists_roles_and_a_moderator_sees_settings_read_only(
    consoles: Consoles, network: Network
) -> None:
    console = consoles.new()
    page = console.page
    console.sign_in(network, "mo")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(4)
    for username, role in (("boss", "Super Admin"), ("ann", "Admin"), ("bob", "Admin"),
                           ("mo", "Moderator")):
        expect(page.locator(f'tr[data-username="{username}"] .role')).to_have_text(role)
    # A moderator may not revoke anyone, not even themself.
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    console.shot("admins")
    console.go("Security")
    expect(page.get_by_role("switch", name="Secure mode")).to_be_disabled()
    expect(page.get_by_text("Only admins can see and generate the server key.")).to_be_visible()
    console.go("Push Notifications")
    expect(page.get_by_role("switch", name="Push notifications for this network")).to_be_disabled()
    expect(page.get_by_role("switch", name="New post")).to_be_disabled()
    console.shot("push-read-only")

"""Settings > Admin Users: your admin token (reveal, copy, generate), revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.browser.conftest import Consoles, Gateway, Network, playwright_api

expect = playwright_api().expect

GRACE = timedelta(hours=24)  # tokens.admin_rotation_grace, the default


def _time(text: str | None) -> datetime:
    assert text is not None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_reveal_copy_and_generate_your_admin_token(consoles: Consoles, network: Network) -> None:
    console = consoles.new(clipboard=True)
    page = console.page
    console.sign_in(network, "ann")
    _status, current, _ = console.api("GET", "/api/v1/admin-token")
    old = current["adminToken"]

    # The "…" menu next to your own name, by keyboard.
    menu_button = page.get_by_role("button", name="Admin token options for ann (you)")
    expect(page.locator('tr[data-username="ann"]')).to_contain_text("you")
    expect(page.locator('tr[data-username="bob"] [aria-haspopup]')).to_have_count(0)
    menu_button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem", name="Show admin token")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitem", name="Generate new token")).to_be_focused()
    page.keyboard.press("Escape")  # closes the menu, back on its button
    expect(page.get_by_role("menu")).to_be_hidden()
    expect(menu_button).to_be_focused()
    expect(menu_button).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitem", name="Show admin token")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Your admin token")
    field = dialog.get_by_label("Admin token", exact=True)
    expect(field).to_have_attribute("type", "password")  # hidden until revealed
    expect(field).to_have_value(old)
    expect(dialog.locator(".issued time")).to_have_attribute("datetime", current["issuedAt"])
    expect(dialog.locator(".expires time")).to_have_attribute("datetime", current["expiresAt"])
    console.shot("token-hidden")
    dialog.get_by_role("button", name="Reveal").click()
    expect(field).to_have_attribute("type", "text")
    expect(dialog.get_by_role("button", name="Hide")).to_have_attribute("aria-pressed", "true")
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == old
    console.shot("token-revealed")
    # Escape closes the dialog and gives focus back to the menu button.
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(menu_button).to_be_focused()

    # Generate: asked first; cancelling changes nothing.
    menu_button.click()
    page.get_by_role("menuitem", name="Generate new token").click()
    confirm = page.get_by_role("dialog", name="Generate a new admin token?")
    expect(confirm).to_contain_text("grace period")
    confirm.get_by_role("button", name="Cancel").click()
    assert console.api("GET", "/api/v1/admin-token")[1]["adminToken"] == old
    menu_button.click()
    page.get_by_role("menuitem", name="Generate new token").click()
    page.get_by_role("dialog", name="Generate a new admin token?").get_by_role(
        "button", name="Generate").click()
    shown = page.get_by_role("dialog", name="Your new admin token")
    new = shown.get_by_label("New admin token", exact=True).input_value()
    assert new and new != old
    console.shot("token-generated")
    # The old token's cut-off: the grace window after the new one was issued, which is
    # what the gateway tells callers still using the old token.
    issued = _time(shown.locator(".issued time").get_attribute("datetime"))
    until = shown.locator(".grace time").get_attribute("datetime")
    assert abs(_time(until) - (issued + GRACE)) <= timedelta(seconds=1)  # whole seconds
    expect(shown.locator(".grace")).to_contain_text("in 24 hours")
    status, _, headers = console.api("GET", "/api/v3/admins",
                                     headers={"Authorization": f"Bearer {old}"})
    assert status == 200 and headers["warning"].endswith(f'valid until {until}"')
    assert console.api("GET", "/api/v1/admin-token")[1]["adminToken"] == new
    shown.get_by_role("button", name="Done").click()
    expect(shown).to_have_count(0)


def test_revoking_your_own_token_signs_you_out(consoles: Consoles, network: Network) -> None:
    console = consoles.new()
    page = console.page
    console.sign_in(network, "ann")
    token = console.api("GET", "/api/v1/admin-token")[1]["adminToken"]
    # Only your own row has Revoke for an admin.
    expect(page.get_by_role("button", name="Revoke the admin token of")).to_have_count(1)
    page.get_by_role("button", name="Revoke the admin token of ann").click()
    confirm = page.get_by_role("dialog", name="Revoke your admin token?")
    expect(confirm.locator(".confirm-username")).to_have_text("ann")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice
    console.shot("confirm")
    confirm.get_by_role("button", name="Revoke my token").click()
    expect(page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Your admin token was revoked")
           ).to_be_visible()
    console.shot("signed-out")
    status, body, _ = console.api("GET", "/api/v3/admins",
                                  headers={"Authorization": f"Bearer {token}"})
    assert (status, body["message"]) == (401, "Invalid token")
    # Signing in again issues a new token.
    console.sign_in(network, "ann")
    assert console.api("GET", "/api/v1/admin-token")[1]["adminToken"] != token


def test_a_super_admin_revokes_another_admin(consoles: Consoles, gateway: Gateway) -> None:
    network = gateway.network(boss="super-admin", chief="super-admin", ann="admin", bob="admin",
                              mo="moderator")
    boss, ann = consoles.new(), consoles.new()
    ann.sign_in(network, "ann")
    boss.sign_in(network, "boss")
    page = boss.page
    # Revoke next to everyone but the other super admin; no "Generate" for a super admin.
    for username in ("boss", "ann", "bob", "mo"):
        expect(page.get_by_role("button", name=f"Revoke the admin token of {username}")
               ).to_be_visible()
    expect(page.get_by_role("button", name="Revoke the admin token of chief")).to_have_count(0)
    page.get_by_role("button", name="Admin token options for boss (you)").click()
    expect(page.get_by_role("menuitem")).to_have_count(1)
    page.get_by_role("menuitem", name="Show admin token").click()
    dialog = page.get_by_role("dialog", name="Your admin token")
    expect(dialog.get_by_role("button", name="Generate")).to_have_count(0)
    page.keyboard.press("Escape")
    boss.shot("admins")

    # Escape on the confirmation revokes nothing.
    page.get_by_role("button", name="Revoke the admin token of ann").click()
    confirm = page.get_by_role("dialog", name="Revoke the admin token of ann?")
    expect(confirm).to_contain_text("ann is signed out of the console")
    page.keyboard.press("Escape")
    expect(confirm).to_have_count(0)
    expect(page.get_by_role("button", name="Revoke the admin token of ann")).to_be_focused()
    assert ann.api("GET", "/api/v3/admins")[0] == 200

    page.get_by_role("button", name="Revoke the admin token of ann").click()
    confirm = page.get_by_role("dialog", name="Revoke the admin token of ann?")
    boss.shot("confirm")
    confirm.get_by_role("button", name="Revoke ann's token").click()
    expect(page.get_by_role("status").filter(has_text="The admin token of ann was revoked")
           ).to_be_visible()
    boss.shot("revoked")
    # Ann's console finds its session ended at its next call.
    ann.page.get_by_role("link", name="Security").click()
    expect(ann.page.get_by_role("heading", name="Sign in to the gateway console")).to_be_visible()
    expect(ann.page.get_by_role("status").filter(has_text="session has ended")).to_be_visible()
    ann.shot("ann-signed-out")

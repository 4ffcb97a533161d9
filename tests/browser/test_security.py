"""Settings > Security: secure mode, the server key, certificates and mTLS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.browser.conftest import (
    Console,
    Consoles,
    Gateway,
    Network,
    make_csr,
    playwright_api,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

expect = playwright_api().expect


def _switch(page: Page, name: str) -> Locator:
    return page.get_by_role("switch", name=name)


def _secure_mode_on(console: Console) -> None:
    console.go("Security")
    _switch(console.page, "Secure mode").click()
    expect(_switch(console.page, "Secure mode")).to_have_attribute("aria-checked", "true")


def test_secure_mode_and_a_server_key_shown_once(
    consoles: Consoles, gateway: Gateway, network: Network
) -> None:
    console = consoles.new(clipboard=True)
    page = console.page
    console.sign_in(network, "ann")
    console.go("Security")
    # The API key used to sign in, with the network's details.
    expect(page.get_by_role("textbox", name="API key")).to_have_value(network.api_key)
    expect(page.locator(".details")).to_contain_text(network.network_id)
    secure = _switch(page, "Secure mode")
    expect(secure).to_have_attribute("aria-checked", "false")
    expect(page.get_by_role("button", name="+ Create Certificate")).to_be_disabled()
    expect(page.get_by_text("Turn secure mode on to create certificates.")).to_be_visible()
    console.shot("secure-off")
    secure.focus()
    page.keyboard.press("Space")  # a real button: the keyboard works
    expect(secure).to_have_attribute("aria-checked", "true")
    expect(secure).to_be_focused()  # the page was redrawn; focus stayed on the switch
    expect(page.get_by_role("button", name="+ Create Certificate")).to_be_enabled()
    page.reload()
    expect(_switch(page, "Secure mode")).to_have_attribute("aria-checked", "true")
    assert console.api("GET", "/api/v3/networks/me")[1]["useSecureAuthentication"] is True

    expect(page.locator(".server-key-info")).to_have_text("No server key has been generated yet.")
    page.get_by_role("button", name="Generate new server key").click()
    dialog = page.get_by_role("dialog", name="Generate a new server key")
    expect(dialog).to_contain_text("stops working as soon as the new one is made")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice
    console.shot("server-key-warning")
    dialog.get_by_role("button", name="Continue").click()
    dialog = page.get_by_role("dialog", name="Your new server key")
    expect(dialog).to_contain_text("This key will not be shown again.")
    key = dialog.get_by_label("Server key", exact=True).input_value()
    assert len(key) >= 32
    dialog.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == key
    console.shot("server-key-once")
    dialog.get_by_role("button", name="Done").click()
    expect(page.locator(".server-key-info")).to_contain_text("by ann")
    assert key not in page.content()  # shown once: gone from the page
    # The key works: it obtains an auth token in secure mode.
    status, token, _ = console.api("GET", "/api/v3/authentication/token?userId=u1",
                                   headers={"x-server-key": key})
    assert status == 200 and isinstance(token, str)
    console.shot("server-key-info")

    # Not offered to a super admin.
    boss = consoles.new()
    boss.sign_in(network, "boss")
    boss.go("Security")
    expect(boss.page.get_by_role("button", name="Generate new server key")).to_have_count(0)
    expect(boss.page.get_by_text("Super admins cannot generate a server key")).to_be_visible()
    boss.shot("super-admin")


def test_certificates_from_a_csr_with_the_name_and_count_limits(
    consoles: Consoles, network: Network, tmp_path: Path
) -> None:
    console = consoles.new()
    page = console.page
    console.sign_in(network, "ann")
    _secure_mode_on(console)
    expect(page.get_by_text("No certificates yet.")).to_be_visible()
    csr, _key = make_csr(tmp_path, "client-one")

    page.get_by_role("button", name="+ Create Certificate").click()
    dialog = page.get_by_role("dialog", name="Create Certificate")
    name = dialog.get_by_label("Certificate Name")
    expect(name).to_be_focused()
    create = dialog.get_by_role("button", name="Create", exact=True)
    expect(create).to_be_disabled()  # both fields are required
    # 30 characters at most, counted as you type.
    name.press_sequentially("a" * 31)
    expect(dialog.locator(".counter")).to_have_text("31/30 characters")
    expect(dialog.get_by_text("Certificate Name: at most 30 characters (31 now).")).to_be_visible()
    expect(name).to_have_attribute("aria-invalid", "true")
    dialog.get_by_label("Certificate signing request").fill(csr)
    expect(create).to_be_disabled()
    console.shot("name-too-long")
    name.press("End")
    name.press("Backspace")
    expect(dialog.locator(".counter")).to_have_text("30/30 characters")
    expect(create).to_be_enabled()
    # A CSR the gateway cannot read: its message, next to the CSR.
    name.fill("client one")
    dialog.get_by_label("Certificate signing request").fill("not a CSR")
    create.click()
    csr_error = dialog.locator(".field").filter(has=page.get_by_label(
        "Certificate signing request")).locator(".error")
    expect(csr_error).to_have_text("csr: not a PEM certificate signing request")
    expect(dialog.get_by_label("Certificate signing request")).to_be_focused()
    console.shot("bad-csr")
    dialog.get_by_label("Certificate signing request").fill(csr)
    create.click()

    created = page.get_by_role("dialog", name="Certificate client one created")
    pem = created.get_by_label("Certificate (PEM)", exact=True).input_value()
    certificate = x509.load_pem_x509_certificate(pem.encode())
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
    expect(created.locator("dd.fingerprint")).to_have_text(fingerprint)
    console.shot("created")
    created.get_by_role("button", name="Done").click()
    row = page.locator('tr[data-certificate="client one"]')
    expect(row.locator(".fingerprint")).to_have_text(fingerprint)
    expect(row.locator("time").nth(1)).to_have_attribute(
        "datetime", certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"))

    # A duplicate name: the gateway's 409, next to the name.
    page.get_by_role("button", name="+ Create Certificate").click()
    dialog = page.get_by_role("dialog", name="Create Certificate")
    dialog.get_by_label("Certificate Name").fill("client one")
    dialog.get_by_label("Certificate signing request").fill(make_csr(tmp_path, "client-two")[0])
    dialog.get_by_role("button", name="Create", exact=True).click()
    expect(dialog.locator(".error:visible")).to_have_text(
        "a certificate named 'client one' already exists in this network")
    expect(dialog.get_by_label("Certificate Name")).to_have_attribute("aria-invalid", "true")
    console.shot("duplicate-name")
    dialog.get_by_label("Certificate Name").fill("client two")
    dialog.get_by_role("button", name="Create", exact=True).click()
    page.get_by_role("dialog", name="Certificate client two created").get_by_role(
        "button", name="Done").click()

    # Two certificates: the most a network may have.
    expect(page.locator("tr[data-certificate]")).to_have_count(2)
    expect(page.get_by_role("button", name="+ Create Certificate")).to_be_disabled()
    expect(page.get_by_text("This network has 2 certificates, the most it can have")
           ).to_be_visible()
    console.shot("two-certificates")
    # Deleting one, after a confirmation naming it, allows another.
    page.get_by_role("button", name="Delete certificate client one").click()
    confirm = page.get_by_role("dialog", name="Delete certificate client one?")
    expect(confirm).to_contain_text(fingerprint)
    confirm.get_by_role("button", name="Delete certificate").click()
    expect(page.locator("tr[data-certificate]")).to_have_count(1)
    expect(page.get_by_role("button", name="+ Create Certificate")).to_be_enabled()
    listed = console.api("GET", "/api/v3/networks/certificates")[1]["certificates"]
    assert [c["name"] for c in listed] == ["client two"]


def test_mtls_with_a_client_certificate(
    consoles: Consoles, network: Network, tmp_path: Path
) -> None:
    plain = consoles.new()
    page = plain.page
    plain.sign_in(network, "ann")
    plain.go("Security")
    # mTLS needs secure mode first; the advice to create a certificate first is there.
    expect(_switch(page, "mTLS")).to_be_disabled()
    expect(page.get_by_text("Needs secure mode: turn secure mode on first.")).to_be_visible()
    expect(page.get_by_role("note").filter(has_text="Create a certificate first.")).to_be_visible()
    _secure_mode_on(plain)
    expect(_switch(page, "mTLS")).to_be_enabled()
    csr, key = make_csr(tmp_path, "browser")
    page.get_by_role("button", name="+ Create Certificate").click()
    dialog = page.get_by_role("dialog", name="Create Certificate")
    dialog.get_by_label("Certificate Name").fill("browser")
    dialog.get_by_label("Certificate signing request").fill(csr)
    dialog.get_by_role("button", name="Create", exact=True).click()
    created = page.get_by_role("dialog", name="Certificate browser created")
    cert = tmp_path / "browser.pem"
    cert.write_text(created.get_by_label("Certificate (PEM)", exact=True).input_value())
    created.get_by_role("button", name="Done").click()

    # A browser presenting that certificate, over HTTPS, turns mTLS on.
    secured = consoles.new(https=True, client_cert=(cert, key))
    secured.sign_in(network, "ann")
    secured.go("Security")
    mtls = _switch(secured.page, "mTLS")
    mtls.click()
    confirm = secured.page.get_by_role("dialog", name="Turn mTLS on?")
    expect(confirm).to_contain_text("including this console's")
    secured.shot("confirm")
    confirm.get_by_role("button", name="Turn mTLS on").click()
    expect(mtls).to_have_attribute("aria-checked", "true")
    secured.page.reload()
    expect(_switch(secured.page, "mTLS")).to_have_attribute("aria-checked", "true")
    secured.shot("mtls-on")

    # The console without a certificate is refused, and says why.
    page.reload()
    expect(page.locator(".error:visible")).to_contain_text("client certificate required")
    expect(page.locator(".error:visible")).to_contain_text("mTLS is on for this network")
    plain.shot("refused-without-certificate")

    # Secure mode cannot go off under mTLS: the gateway's 409, next to the switch.
    _switch(secured.page, "Secure mode").click()
    secure_section = secured.page.locator("section").filter(has=_switch(secured.page,
                                                                        "Secure mode"))
    expect(secure_section.locator(".error")).to_have_text(
        "secure mode cannot be turned off while mTLS is on: turn mTLS off first")
    expect(_switch(secured.page, "Secure mode")).to_have_attribute("aria-checked", "true")
    secured.shot("secure-mode-conflict")
    _switch(secured.page, "mTLS").click()
    expect(_switch(secured.page, "mTLS")).to_have_attribute("aria-checked", "false")
    page.reload()
    expect(_switch(page, "mTLS")).to_have_attribute("aria-checked", "false")
    assert re.search(r"mTLS is off", secured.page.locator(".status").inner_text())

"""Settings > Security > Webhooks in a real browser: add one (its secret shown once),
send a test event to a receiver that verifies its signature, see the delivery state,
delete it; a moderator is told only admins manage them.

The gateway here is this module's own: the package's refuses loopback receivers
(`notices.allow_private_targets` is off by default)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.testing.process import GatewayProcess
from gateway.testing.support import write_config
from tests.browser.conftest import BackgroundLoop, Consoles, Gateway, playwright_api
from tests.notices.receiver import Receiver, start_receiver

if TYPE_CHECKING:
    from playwright.sync_api import Browser

expect = playwright_api().expect


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Receiver]]:
    folder: Path = tmp_path_factory.mktemp("webhooks-console")
    loop = BackgroundLoop()
    receiver = Receiver()
    # The receiver's port first: free_port() only finds ports free at that moment, and an
    # ephemeral port taken later could be one of them.
    runner = loop.run(start_receiver(receiver))
    config = write_config(folder, {"notices": {"allow_private_targets": True,
                                               "poll_interval": "100ms"}})
    process = GatewayProcess(config)
    try:
        loop.run(process.start())
        yield Gateway(process, loop, config, folder), receiver
    finally:
        if process.proc is not None:
            loop.run(process.stop())
        loop.run(runner.cleanup())
        loop.close()
    assert receiver.bad == [], receiver.bad


def test_add_test_and_delete_a_webhook(browser: Browser,
                                       hooked: tuple[Gateway, Receiver]) -> None:
    gateway, receiver = hooked
    network = gateway.network(ann="admin", mo="moderator")
    consoles = Consoles(gateway, browser, "webhooks")
    try:
        console = consoles.new(clipboard=True)
        page = console.page
        console.sign_in(network, "ann")
        console.go("Security")
        webhooks = page.get_by_role("region", name="Webhooks")
        expect(webhooks.get_by_text("No webhooks yet.")).to_be_visible()

        webhooks.get_by_role("button", name="+ Add webhook").click()
        dialog = page.get_by_role("dialog", name="Add a webhook")
        dialog.get_by_role("button", name="Add webhook").click()
        expect(dialog.get_by_text("URL: enter the address")).to_be_visible()
        dialog.get_by_label("URL").fill("ftp://example.com/x")
        dialog.get_by_role("button", name="Add webhook").click()
        expect(dialog.get_by_role("alert")).to_contain_text("url must be an http:// or https://")
        dialog.get_by_label("URL").fill(receiver.url_for("/console"))
        dialog.get_by_role("checkbox", name="Certificate deleted").uncheck()
        dialog.get_by_role("button", name="Add webhook").click()

        shown = page.get_by_role("dialog", name="Your webhook's signing secret")
        expect(shown.get_by_text("This secret will not be shown again.")).to_be_visible()
        secret = shown.get_by_role("textbox", name="Signing secret").input_value()
        assert secret.startswith("whsec_")
        receiver.secrets["/console"] = secret
        console.shot("secret-shown")
        shown.get_by_role("button", name="Done").click()

        row = webhooks.locator("tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text(receiver.url_for("/console"))
        expect(row).to_contain_text("Nothing sent yet")
        expect(row).to_contain_text("9 of 10 events")
        expect(row).not_to_contain_text("Certificate deleted")
        row.get_by_role("button", name="Send a test event").click()
        expect(page.locator("p.status")).to_contain_text("The test event was delivered")
        expect(row).to_contain_text("Last delivered")
        (test,) = receiver.acked()
        assert test.kind == "webhook.test" and test.body["data"]["actor"] == "ann"
        console.shot("test-delivered")

        listed = console.api("GET", "/api/v3/webhooks")[1]
        assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)

        row.get_by_role("button", name="Delete the webhook").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete webhook").click()
        expect(webhooks.get_by_text("No webhooks yet.")).to_be_visible()
        assert console.api("GET", "/api/v3/webhooks")[1] == {"webhooks": []}

        moderator = consoles.new()
        moderator.sign_in(network, "mo")
        moderator.go("Security")
        expect(moderator.page.get_by_role("region", name="Webhooks")).to_contain_text(
            "Only admins can see and manage webhooks.")
    finally:
        problems = consoles.close()
    assert not problems, "the console logged errors:\n" + "\n".join(problems)

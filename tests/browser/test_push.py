"""Settings > Push Notifications: the network toggle greys the events out."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Consoles, Network, playwright_api

expect = playwright_api().expect

EVENTS = ("New message", "New post", "Reaction to a post", "New comment", "Reply to a comment",
          "Reaction to a comment")


def _events(setting: dict[str, Any]) -> dict[str, bool]:
    return {f"{e['moduleName']}/{e['name']}": e["isPushNotifiable"]
            for e in setting["notifiableEvents"]}


def test_push_toggles_and_events_greyed_out_while_the_network_is_off(
    consoles: Consoles, network: Network
) -> None:
    console = consoles.new()
    page = console.page
    console.sign_in(network, "ann")
    console.go("Push Notifications")
    master = page.get_by_role("switch", name="Push notifications for this network")
    expect(master).to_have_attribute("aria-checked", "true")
    for legend in ("Chat", "Posts", "Comments"):
        expect(page.locator("fieldset legend", has_text=legend)).to_be_visible()
    for name in EVENTS:
        expect(page.get_by_role("switch", name=name, exact=True)).to_be_enabled()

    page.get_by_role("switch", name="New post", exact=True).click()
    expect(page.get_by_role("switch", name="New post", exact=True)).to_have_attribute(
        "aria-checked", "false")
    level = "/api/v3/notification/setting?level=network"
    assert _events(console.api("GET", level)[1])["social/post.created"] is False
    console.shot("post-off")

    master.click()
    expect(master).to_have_attribute("aria-checked", "false")
    for name in EVENTS:
        expect(page.get_by_role("switch", name=name, exact=True)).to_be_disabled()
    expect(page.locator("fieldset.event-group.is-disabled")).to_have_count(3)
    expect(page.get_by_text("turn them on above to change events")).to_be_visible()
    # The events say why they are greyed out.
    expect(page.locator("fieldset.event-group").first).to_have_attribute(
        "aria-describedby", "push-events-note")
    setting = console.api("GET", level)[1]
    assert setting["isPushNotifiable"] is False
    assert not any(e["isNetworkEnabled"] for e in setting["notifiableEvents"])
    console.shot("network-off")

    # Back on: each event kept its own setting.
    master.click()
    expect(master).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("switch", name="New post", exact=True)).to_have_attribute(
        "aria-checked", "false")
    expect(page.get_by_role("switch", name="New comment", exact=True)).to_have_attribute(
        "aria-checked", "true")
    expect(page.locator("fieldset.event-group.is-disabled")).to_have_count(0)


def test_an_api_error_is_shown_next_to_the_control_that_caused_it(
    consoles: Consoles, network: Network
) -> None:
    ann, bob = consoles.new(), consoles.new()
    ann.sign_in(network, "ann")
    ann.go("Push Notifications")
    # Meanwhile another admin turns push off for the network.
    bob.sign_in(network, "bob")
    bob.go("Push Notifications")
    bob.page.get_by_role("switch", name="Push notifications for this network").click()
    expect(bob.page.get_by_role("switch", name="New message", exact=True)).to_be_disabled()

    # Ann's page is stale: changing an event now is refused, and says why, right there;
    # the page then shows the setting as it is, with the network switch to fix it.
    master = ann.page.get_by_role("switch", name="Push notifications for this network")
    switch = ann.page.get_by_role("switch", name="New message", exact=True)
    expect(master).to_have_attribute("aria-checked", "true")
    switch.click()
    event = ann.page.locator('[data-event="chat/message.created"]').locator("..")
    expect(event.get_by_role("alert")).to_have_text(
        "notifiableEvents cannot change while the network push setting (isPushNotifiable)"
        " is off")
    expect(switch).to_have_attribute("aria-checked", "true")  # unchanged
    expect(switch).to_be_disabled()
    expect(master).to_have_attribute("aria-checked", "false")
    expect(master).to_be_focused()
    assert "Traceback" not in ann.page.content()
    ann.shot("conflict")

"""Webhook subscriptions: create (secret shown once, stored sealed), list, delete, test;
who may do what; what is refused; the audit entries."""

from __future__ import annotations

import json
from typing import Any

from gateway.keys import STORE
from gateway.notices import kinds
from tests.auth.conftest import error
from tests.notices.conftest import Hooks

ADMIN_ONLY: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("GET", "/api/v3/webhooks", None),
    ("POST", "/api/v3/webhooks", {"url": "https://example.com/h", "events": ["certificate.added"]}),
    ("DELETE", "/api/v3/webhooks/0123456789abcdef01234567", None),
    ("POST", "/api/v3/webhooks/0123456789abcdef01234567/test", {}),
)


async def test_create_list_delete(hooks: Hooks) -> None:
    created = await hooks.subscribe("/a", events=(kinds.CERTIFICATE_ADDED, kinds.MTLS_SWITCHED,
                                                  kinds.CERTIFICATE_ADDED))
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["events"] == [kinds.CERTIFICATE_ADDED, kinds.MTLS_SWITCHED]
    assert created["url"] == hooks.receiver.url_for("/a")
    assert created["createdBy"] == "boss"
    assert created["deliveries"] == {"pending": 0, "failed": 0, "lastDeliveredAt": None,
                                     "lastAttemptAt": None, "lastError": None}

    status, listed, response = await hooks.gw.call("GET", "/api/v3/webhooks", hooks.admin)
    assert status == 200
    assert listed == {"webhooks": [{k: v for k, v in created.items() if k != "secret"}]}
    assert secret not in await response.text()

    # Stored sealed: not the secret, and not something its hash would match either.
    store = hooks.gw.app[STORE]
    row = await store.db.fetchrow("SELECT sealed_secret FROM webhook_subscriptions")
    assert row is not None and secret not in row["sealed_secret"]

    status, body, _ = await hooks.gw.call("DELETE", f"/api/v3/webhooks/{created['webhookId']}",
                                          hooks.admin)
    assert (status, body) == (200, {"success": True})
    status, listed, _ = await hooks.gw.call("GET", "/api/v3/webhooks", hooks.admin)
    assert listed == {"webhooks": []}
    status, body, _ = await hooks.gw.call("DELETE", f"/api/v3/webhooks/{created['webhookId']}",
                                          hooks.admin)
    assert (status, body) == (404, error(404, "webhookId Not Found."))

    entries = (await hooks.gw.call("GET", "/api/v3/audit-logs", hooks.admin))[1]["auditLogs"]
    actions = {(e["action"], e["target"]) for e in entries}
    target = f"{created['webhookId']} (127.0.0.1)"  # the host only, never the path or query
    assert ("webhook.create", target) in actions and ("webhook.delete", target) in actions
    assert secret not in json.dumps(entries)


async def test_only_admins_of_the_network(hooks: Hooks) -> None:
    gw = hooks.gw
    moderator = await gw.admin_token(hooks.network, "mod", "moderator")
    user = (await gw.login(hooks.network, "bob"))["accessToken"]
    other_network = await gw.network()
    foreign = await gw.admin_token(other_network, "them", "admin")
    created = await hooks.subscribe("/mine")
    for method, path, body in ADMIN_ONLY:
        for token in (moderator, user):
            status, answer, _ = await gw.call(method, path, token, json=body)
            assert (status, answer) == (403, error(403, "Permission denied")), (method, path)
        status, answer, _ = await gw.call(method, path, None, json=body)
        assert status == 401, (method, path)
    # Another network's admin neither sees nor touches this network's subscription.
    assert (await gw.call("GET", "/api/v3/webhooks", foreign))[1] == {"webhooks": []}
    for method, suffix in (("DELETE", ""), ("POST", "/test")):
        status, answer, _ = await gw.call(
            method, f"/api/v3/webhooks/{created['webhookId']}{suffix}", foreign, json={})
        assert (status, answer) == (404, error(404, "webhookId Not Found."))
    assert len((await gw.call("GET", "/api/v3/webhooks", hooks.admin))[1]["webhooks"]) == 1


async def test_a_superseded_token_may_list_but_not_change(hooks: Hooks) -> None:
    created = await hooks.subscribe("/s", events=(kinds.SERVER_KEY_GENERATED,))
    old = hooks.admin
    status, _, _ = await hooks.gw.call("POST", "/api/v1/admin-token", old)
    assert status == 200
    assert (await hooks.gw.call("GET", "/api/v3/webhooks", old))[0] == 200
    for method, path, body in (
        ("POST", "/api/v3/webhooks", {"url": "https://example.com/", "events": ["mtls"]}),
        ("DELETE", f"/api/v3/webhooks/{created['webhookId']}", None),
        ("POST", f"/api/v3/webhooks/{created['webhookId']}/test", {}),
    ):
        status, answer, _ = await hooks.gw.call(method, path, old, json=body)
        assert (status, answer) == (403, error(403, "Permission denied")), (method, path)


async def test_bad_requests_name_the_field(hooks: Hooks) -> None:
    good = {"url": "https://example.com/hook", "events": [kinds.CERTIFICATE_ADDED]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"events": good["events"]}, "url is required"),
        ({**good, "url": 5}, "url must be a string"),
        ({**good, "url": "ftp://example.com/x"}, "url must be an http:// or https:// URL"),
        ({**good, "url": "https:///nohost"}, "url must be an http:// or https:// URL"),
        ({**good, "url": "https://u:p@example.com/"}, "url must not carry a user name"),
        ({**good, "url": "https://example.com/#x"}, "url must not have a fragment"),
        ({**good, "url": "https://example.com:99999/"}, "url must be a valid URL"),
        ({**good, "url": "https://exa mple.com/"}, "url must not contain spaces"),
        ({**good, "url": "https://example.com/" + "a" * 2000}, "url must be 1-2000 characters"),
        ({"url": good["url"]}, "events is required"),
        ({**good, "events": []}, "events is required"),
        ({**good, "events": "certificate.added"}, "events is required"),
        ({**good, "events": ["certificate.added", "nope"]}, "events[1] must be one of"),
        ({**good, "events": [kinds.WEBHOOK_TEST]}, "events[0] must be one of"),
    ]
    for body, message in cases:
        status, answer, _ = await hooks.gw.call("POST", "/api/v3/webhooks", hooks.admin,
                                                json=body)
        assert status == 400 and answer["message"].startswith(message), (body, answer)
    status, listed, _ = await hooks.gw.call("GET", "/api/v3/webhooks", hooks.admin)
    assert listed == {"webhooks": []}


async def test_at_most_ten_per_network(hooks: Hooks) -> None:
    for index in range(10):
        await hooks.subscribe(f"/n{index}")
    status, answer, _ = await hooks.gw.call(
        "POST", "/api/v3/webhooks", hooks.admin,
        json={"url": "https://example.com/", "events": [kinds.MTLS_SWITCHED]})
    assert (status, answer) == (409, error(409, "the network already has 10 webhooks: delete"
                                                " one first"))


async def test_send_test_event(hooks: Hooks) -> None:
    created = await hooks.subscribe("/t", events=(kinds.CERTIFICATE_ADDED,))
    status, answer, _ = await hooks.gw.call(
        "POST", f"/api/v3/webhooks/{created['webhookId']}/test", hooks.admin, json={})
    assert status == 200, answer
    assert answer["delivered"] is True and answer["attempts"] == 1 and answer["error"] is None
    (test,) = hooks.receiver.acked()
    assert (test.kind, test.delivery_id) == (kinds.WEBHOOK_TEST, answer["deliveryId"])
    assert test.body["data"] == {"webhookId": created["webhookId"], "actor": "boss"}
    assert test.body["networkId"] == hooks.network.id

    hooks.receiver.script["/t"] = [500]
    status, answer, _ = await hooks.gw.call(
        "POST", f"/api/v3/webhooks/{created['webhookId']}/test", hooks.admin, json={})
    assert status == 200 and answer["delivered"] is False and answer["error"] == "HTTP 500"
    status, listed, _ = await hooks.gw.call("GET", "/api/v3/webhooks", hooks.admin)
    deliveries = listed["webhooks"][0]["deliveries"]
    assert deliveries["pending"] == 1 and deliveries["lastError"] == "HTTP 500"
    assert deliveries["lastDeliveredAt"] is not None

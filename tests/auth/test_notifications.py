"""Push-notification settings at network level: defaults, roles, the toggle, validation."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.push import EVENTS, SETTING_NAME, load
from gateway.store import Network, Store
from tests.auth.conftest import Gateway, error

PATH = "/api/v3/notification/setting"
READ = f"{PATH}?level=network"
REQUIRED_EVENTS = {
    ("chat", "message.created"),
    ("social", "post.created"),
    ("social", "post.reacted"),
    ("social", "comment.created"),
    ("social", "comment.replied"),
    ("social", "comment.reacted"),
}


def event(module: str, name: str, on: bool) -> dict[str, Any]:
    return {"moduleName": module, "name": name, "isPushNotifiable": on}


def events_of(body: dict[str, Any]) -> dict[tuple[str, str], tuple[bool, bool]]:
    """(moduleName, name) -> (isPushNotifiable, isNetworkEnabled)."""
    return {(e["moduleName"], e["name"]): (e["isPushNotifiable"], e["isNetworkEnabled"])
            for e in body["notifiableEvents"]}


async def read(gw: Gateway, token: str) -> dict[str, Any]:
    status, body, _ = await gw.call("GET", READ, token)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def post(gw: Gateway, token: str, **fields: Any) -> tuple[int, Any]:
    status, body, _ = await gw.call("POST", PATH, token, json={"level": "network", **fields})
    return status, body


async def admin(gw: Gateway, network: Network | None = None) -> tuple[Network, str]:
    network = network or await gw.network()
    return network, await gw.admin_token(network, "ann", "admin")


async def test_defaults_every_event_on(gw: Gateway) -> None:
    _, token = await admin(gw)
    body = await read(gw, token)
    assert body["level"] == "network" and body["isPushNotifiable"] is True
    events = events_of(body)
    assert REQUIRED_EVENTS <= set(events)
    assert len(events) == len(body["notifiableEvents"])  # each event listed once
    assert set(events.values()) == {(True, True)}


async def test_roles(gw: Gateway) -> None:
    network = await gw.network()
    mod = await gw.admin_token(network, "mod", "moderator")
    ann = await gw.admin_token(network, "ann", "admin")
    boss = await gw.admin_token(network, "boss", "super-admin")

    assert (await read(gw, mod))["isPushNotifiable"] is True
    assert await post(gw, mod, isPushNotifiable=False) == (403, error(403, "Permission denied"))
    assert (await read(gw, mod))["isPushNotifiable"] is True

    status, body = await post(gw, ann, isPushNotifiable=False)
    assert status == 200 and body["isPushNotifiable"] is False
    status, body = await post(gw, boss, isPushNotifiable=True)
    assert status == 200 and body["isPushNotifiable"] is True


async def test_end_users_and_anonymous_callers_are_refused(gw: Gateway) -> None:
    network = await gw.network()
    user = (await gw.login(network))["accessToken"]
    denied = error(403, "Permission denied")
    assert (await gw.call("GET", READ, user))[:2] == (403, denied)
    assert (await gw.call("POST", PATH, user, json={"level": "network"}))[:2] == (403, denied)
    assert (await gw.call("GET", READ))[:2] == (401, error(401, "Unauthorized"))
    assert (await gw.call("POST", PATH, json={"level": "network"}))[:2] == (
        401, error(401, "Unauthorized"))


async def test_network_off_keeps_each_events_choice(gw: Gateway) -> None:
    _, token = await admin(gw)
    status, _ = await post(gw, token, notifiableEvents=[event("social", "post.reacted", False)])
    assert status == 200

    status, body = await post(gw, token, isPushNotifiable=False)
    assert status == 200 and body == await read(gw, token)
    assert body["isPushNotifiable"] is False
    events = events_of(body)
    assert events[("social", "post.reacted")] == (False, False)
    assert events[("chat", "message.created")] == (True, False)
    assert {enabled for _, enabled in events.values()} == {False}

    status, body = await post(gw, token, isPushNotifiable=True)
    events = events_of(body)
    assert status == 200 and body["isPushNotifiable"] is True
    assert events[("social", "post.reacted")] == (False, True)
    assert events[("chat", "message.created")] == (True, True)


async def test_delivery_follows_the_toggle_and_the_event(gw: Gateway) -> None:
    network, token = await admin(gw)
    await post(gw, token, notifiableEvents=[event("chat", "message.created", False)])
    setting = await load(gw.store, network.id)
    assert not setting.delivers("chat", "message.created")
    assert setting.delivers("social", "post.created")
    await post(gw, token, isPushNotifiable=False)
    assert not (await load(gw.store, network.id)).delivers("social", "post.created")


async def test_changing_an_event_while_the_network_is_off_conflicts(gw: Gateway) -> None:
    _, token = await admin(gw)
    await post(gw, token, isPushNotifiable=False)
    before = await read(gw, token)

    status, body = await post(gw, token,
                              notifiableEvents=[event("chat", "message.created", False)])
    assert status == 409 and body["code"] == 400900
    assert "isPushNotifiable" in body["message"] and "off" in body["message"]
    assert await read(gw, token) == before

    # Sending an event's current value back is not a change (the answer round-trips).
    unchanged = [event(e["moduleName"], e["name"], e["isPushNotifiable"])
                 for e in before["notifiableEvents"]]
    assert await post(gw, token, notifiableEvents=unchanged) == (200, before)


async def test_the_toggle_applies_before_the_events_of_the_same_request(gw: Gateway) -> None:
    _, token = await admin(gw)
    before = await read(gw, token)
    # Turning the network off and changing an event: the change would land while off.
    status, body = await post(gw, token, isPushNotifiable=False,
                              notifiableEvents=[event("social", "post.created", False)])
    assert (status, body["code"]) == (409, 400900)
    assert await read(gw, token) == before

    # Turning it on and changing an event: allowed.
    await post(gw, token, isPushNotifiable=False)
    status, body = await post(gw, token, isPushNotifiable=True,
                              notifiableEvents=[event("social", "post.created", False)])
    assert status == 200 and body["isPushNotifiable"] is True
    assert events_of(body)[("social", "post.created")] == (False, True)


async def test_partial_updates_leave_the_rest_alone(gw: Gateway) -> None:
    _, token = await admin(gw)
    status, body = await post(gw, token, notifiableEvents=[
        event("social", "comment.created", False), event("social", "comment.replied", False)])
    assert status == 200 and body["isPushNotifiable"] is True
    status, body = await post(gw, token,
                              notifiableEvents=[event("social", "comment.replied", True)])
    assert status == 200
    events = events_of(body)
    assert events[("social", "comment.created")] == (False, True)
    assert events[("social", "comment.replied")] == (True, True)
    assert all(on for key, (on, _) in events.items() if key != ("social", "comment.created"))

    status, after = await post(gw, token)  # only the level: nothing to change
    assert (status, after) == (200, body)


@pytest.mark.parametrize(("fields", "field"), [
    ({"level": None}, "level"),
    ({"level": "user"}, "level"),
    ({"isPushNotifiable": "no"}, "isPushNotifiable"),
    ({"isPushNotifiable": 0}, "isPushNotifiable"),
    ({"notifiableEvents": {"chat": False}}, "notifiableEvents"),
    ({"notifiableEvents": ["chat"]}, "notifiableEvents[0]"),
    ({"notifiableEvents": [event("video", "message.created", False)]},
     "notifiableEvents[0].moduleName"),
    ({"notifiableEvents": [event("chat", "post.created", False)]}, "notifiableEvents[0].name"),
    ({"notifiableEvents": [{"moduleName": "chat", "isPushNotifiable": False}]},
     "notifiableEvents[0].name"),
    ({"notifiableEvents": [event("chat", "message.created", False),
                           {**event("social", "post.created", True), "isPushNotifiable": "off"}]},
     "notifiableEvents[1].isPushNotifiable"),
    ({"notifiableEvents": [{"moduleName": "chat", "name": "message.created"}]},
     "notifiableEvents[0].isPushNotifiable"),
    ({"isPushNotifiable": False,
      "notifiableEvents": [event("chat", "message.created", False),
                           event("chat", "message.created", True)]},
     "notifiableEvents[1]"),
])
async def test_bad_input_names_the_field_and_changes_nothing(
    gw: Gateway, fields: dict[str, Any], field: str
) -> None:
    _, token = await admin(gw)
    before = await read(gw, token)
    body = {"level": "network", "isPushNotifiable": False, **fields}
    if body["level"] is None:
        del body["level"]
    status, answer, _ = await gw.call("POST", PATH, token, json=body)
    assert status == 400 and answer["code"] == 400000, answer
    assert answer["message"].startswith(f"{field} "), answer
    assert answer["data"]["detail"][0]["field"] == field
    assert await read(gw, token) == before


async def test_malformed_bodies_and_levels(gw: Gateway) -> None:
    _, token = await admin(gw)
    status, body, _ = await gw.call("POST", PATH, token, data=b"{nope")
    assert status == 400 and body["message"].startswith("body:")
    for path in (PATH, f"{PATH}?level=user"):
        status, body, _ = await gw.call("GET", path, token)
        assert status == 400 and body["message"].startswith("level "), body


async def test_settings_are_per_network(gw: Gateway) -> None:
    _, ann = await admin(gw)
    _, zed = await admin(gw)
    await post(gw, ann, notifiableEvents=[event("chat", "message.created", False)])
    await post(gw, ann, isPushNotifiable=False)
    other = await read(gw, zed)
    assert other["isPushNotifiable"] is True
    assert set(events_of(other).values()) == {(True, True)}


async def test_the_setting_is_stored_and_announced(gw: Gateway) -> None:
    assert hasattr(gw.store, "put_setting"), "SettingsQueries is not part of Store yet"
    network, token = await admin(gw)
    seq = await gw.store.latest_seq()
    status, body = await post(gw, token, isPushNotifiable=False)
    assert status == 200

    fresh = Store(gw.store.db)  # no cache in between: what the database holds
    stored = await fresh.get_setting(network.id, SETTING_NAME)
    assert stored is not None and stored["isPushNotifiable"] is False
    assert (await load(fresh, network.id)).answer() == body
    changes = [c for c in await fresh.changes_since(seq) if c.kind == "setting.updated"]
    assert [(c.network_id, c.payload) for c in changes] == [(network.id, {"name": "push"})]

    # A value written straight to the store is what the API answers.
    await fresh.put_setting(network.id, SETTING_NAME, {"isPushNotifiable": True, "events": {
        "social": {"comment.reacted": False}}})
    events = events_of(await read(gw, token))
    assert events[("social", "comment.reacted")] == (False, True)
    assert len(events) == len(EVENTS)


async def test_settings_store_round_trip(gw: Gateway) -> None:
    network = await gw.network()
    assert await gw.store.get_setting(network.id, "anything") is None
    await gw.store.put_setting(network.id, "anything", {"a": [1, "two", None]})
    await gw.store.put_setting(network.id, "anything", {"a": [3]})  # upsert, not a second row
    assert await gw.store.get_setting(network.id, "anything") == {"a": [3]}


async def test_proxied_calls_carry_the_effective_push_setting(gw: Gateway) -> None:
    import asyncio

    network = await gw.network()
    admin = await gw.admin_token(network, "adm", "admin")
    user = (await gw.login(network))["accessToken"]

    async def seen() -> str:
        _status, echoed, _ = await gw.call("GET", "/api/v3/things", user)
        return str({k.lower(): v for k, v in echoed["headers"]}["x-gateway-push-events"])

    assert (await seen()).split(",") == [
        "chat.message.created", "social.post.created", "social.post.reacted",
        "social.comment.created", "social.comment.replied", "social.comment.reacted"]
    await gw.call("POST", "/api/v3/notification/setting", admin, json={
        "level": "network",
        "notifiableEvents": [{"moduleName": "social", "name": "post.reacted",
                              "isPushNotifiable": False}]})
    for _ in range(100):  # the change feed refreshes the in-memory value
        if "social.post.reacted" not in await seen():
            break
        await asyncio.sleep(0.02)
    assert "social.post.reacted" not in await seen() and "chat.message.created" in await seen()
    await gw.call("POST", "/api/v3/notification/setting", admin,
                  json={"level": "network", "isPushNotifiable": False})
    for _ in range(100):
        if await seen() == "off":
            break
        await asyncio.sleep(0.02)
    assert await seen() == "off"

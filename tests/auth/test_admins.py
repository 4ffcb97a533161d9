"""GET /api/v3/admins: the caller network's console users, for every console role."""

from __future__ import annotations

from gateway.testing.support import Clock
from gateway.timefmt import iso
from tests.auth.conftest import Gateway, error


async def test_every_console_role_lists_its_own_network_only(gw: Gateway, clock: Clock) -> None:
    network, other = await gw.network(), await gw.network()
    boss = await gw.admin_token(network, "boss", "super-admin")
    clock.advance(10)
    ann = await gw.admin_token(network, "ann", "admin")
    clock.advance(10)
    mod = await gw.admin_token(network, "mod", "moderator")
    stranger = await gw.admin_token(other, "stranger", "admin")
    expected = [
        {"username": "boss", "role": "super-admin", "createdAt": iso(clock.now - 20)},
        {"username": "ann", "role": "admin", "createdAt": iso(clock.now - 10)},
        {"username": "mod", "role": "moderator", "createdAt": iso(clock.now)},
    ]
    for token in (boss, ann, mod):
        status, body, _ = await gw.call("GET", "/api/v3/admins", token)
        assert (status, body) == (200, {"admins": expected})
    status, body, _ = await gw.call("GET", "/api/v3/admins", stranger)
    assert (status, body["admins"]) == (200, [
        {"username": "stranger", "role": "admin", "createdAt": iso(clock.now)}])


async def test_end_users_and_anonymous_callers_are_refused(gw: Gateway) -> None:
    network = await gw.network()
    await gw.admin_token(network, "ann", "admin")
    access = (await gw.login(network))["accessToken"]
    assert (await gw.call("GET", "/api/v3/admins", access))[1] == error(403, "Permission denied")
    assert (await gw.call("GET", "/api/v3/admins"))[1] == error(401, "Unauthorized")


async def test_the_console_cookie_lists_too(gw: Gateway) -> None:
    network = await gw.network()
    await gw.admin_token(network, "ann", "admin")  # password "pw"
    status, _, response = await gw.call(
        "POST", "/console/v1/login", headers={"x-api-key": network.api_key},
        json={"username": "ann", "password": "pw"})
    assert status == 200
    cookie = response.cookies["gateway_console"].value
    gw.session.cookie_jar.clear()
    status, body, _ = await gw.call("GET", "/api/v3/admins",
                                    headers={"Cookie": f"gateway_console={cookie}"})
    assert status == 200 and [a["username"] for a in body["admins"]] == ["ann"]
    assert "passwordHash" not in str(body) and "pw" not in body["admins"][0].values()

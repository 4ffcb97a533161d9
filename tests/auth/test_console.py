"""Console login and logout: the cookie session, token generation on login, brute force."""

from __future__ import annotations

from typing import Any

from gateway.auth.passwords import hash_password
from gateway.store import Network
from gateway.testing.support import Clock
from tests.auth.conftest import Gateway, error


async def _admin(gw: Gateway, network: Network, username: str, role: str = "admin") -> None:
    await gw.store.create_admin(network.id, username, role, hash_password("s3cret", log2_n=10))


async def _login(gw: Gateway, network: Network, username: str, password: str = "s3cret",
                 headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    return await gw.call("POST", "/console/v1/login",
                         headers={"x-api-key": network.api_key, **(headers or {})},
                         json={"username": username, "password": password})


async def test_login_generates_a_token_once_and_sets_the_cookie(gw: Gateway) -> None:
    network = await gw.network()
    await _admin(gw, network, "ann")
    status, first, response = await _login(gw, network, "ann")
    assert status == 200 and set(first) == {"adminToken", "issuedAt", "expiresAt", "role"}
    assert first["role"] == "admin"
    cookie = response.cookies["gateway_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    status, second, _ = await _login(gw, network, "ann")
    assert second["adminToken"] == first["adminToken"]  # a valid one exists: no new one
    # The cookie alone authenticates as that admin.
    gw.session.cookie_jar.clear()
    status, body, _ = await gw.call(
        "GET", "/api/v1/admin-token", headers={"Cookie": f"gateway_console={cookie.value}"})
    assert status == 200 and body["adminToken"] == first["adminToken"]


async def test_wrong_username_or_password_is_the_same_401(gw: Gateway) -> None:
    network = await gw.network()
    await _admin(gw, network, "ann")
    for username, password in (("ann", "wrong"), ("nobody", "s3cret")):
        status, body, _ = await _login(gw, network, username, password)
        assert (status, body) == (401, error(401, "Unauthorized"))
    status, body, _ = await gw.call("POST", "/console/v1/login", headers={"x-api-key": "bad"},
                                    json={"username": "ann", "password": "s3cret"})
    assert (status, body) == (401, error(401, "Unauthorized"))


async def test_brute_force_is_rate_limited(gw: Gateway, clock: Clock) -> None:
    network = await gw.network()
    await _admin(gw, network, "ann")
    for _ in range(5):
        assert (await _login(gw, network, "ann", "guess"))[0] == 401
    status, body, response = await _login(gw, network, "ann", "s3cret")
    assert (status, body) == (429, error(429, "RateLimit Exceed."))
    assert 0 < int(response.headers["Retry-After"]) <= 300
    clock.advance(301)
    assert (await _login(gw, network, "ann"))[0] == 200


async def test_logout_ends_the_session_but_not_the_token(gw: Gateway) -> None:
    network = await gw.network()
    await _admin(gw, network, "ann")
    _status, login, response = await _login(gw, network, "ann")
    cookie = {"Cookie": f"gateway_console={response.cookies['gateway_console'].value}"}
    gw.session.cookie_jar.clear()
    assert (await gw.call("POST", "/console/v1/logout", headers=cookie))[1] == {"success": True}
    assert (await gw.call("GET", "/api/v1/admin-token", headers=cookie))[1] == error(
        401, "Unauthorized")
    assert (await gw.call("GET", "/api/v1/admin-token", login["adminToken"]))[0] == 200


async def test_revoking_an_admin_ends_their_console_sessions(gw: Gateway) -> None:
    network = await gw.network()
    await _admin(gw, network, "ann")
    await _admin(gw, network, "boss", "super-admin")
    _status, ann, response = await _login(gw, network, "ann")
    cookie = {"Cookie": f"gateway_console={response.cookies['gateway_console'].value}"}
    _status, boss, _ = await _login(gw, network, "boss")
    gw.session.cookie_jar.clear()
    assert (await gw.call("GET", "/api/v3/networks/me", headers=cookie))[0] == 200
    status, _, _ = await gw.call("DELETE", "/api/v1/admin-token", boss["adminToken"],
                                 json={"username": "ann"})
    assert status == 200
    assert (await gw.call("GET", "/api/v3/networks/me", headers=cookie))[1] == error(
        401, "Unauthorized")
    assert (await gw.call("GET", "/api/v3/x", ann["adminToken"]))[1] == error(
        401, "Invalid token")
    _status, again, _ = await _login(gw, network, "ann")  # the next login: a new token
    assert again["adminToken"] != ann["adminToken"]


async def test_a_moderators_cookie_cannot_do_admin_things(gw: Gateway) -> None:
    network = await gw.network()
    await _admin(gw, network, "mod", "moderator")
    _status, _, response = await _login(gw, network, "mod")
    cookie = {"Cookie": f"gateway_console={response.cookies['gateway_console'].value}"}
    gw.session.cookie_jar.clear()
    assert (await gw.call("GET", "/api/v3/networks/me", headers=cookie))[0] == 200
    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", headers=cookie,
                                    json={"useSecureAuthentication": True})
    assert (status, body) == (403, error(403, "Permission denied"))

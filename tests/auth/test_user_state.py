"""`GET /api/v3/users/{userId}/ban`: a user and its ban state, for console users.

The platform's own `GET /api/v3/users/{userId}` stays with the upstream (the SDK calls
it with access tokens); this path was already the gateway's (POST and DELETE ban)."""

from __future__ import annotations

from tests.auth.conftest import Gateway, error


async def test_console_users_look_a_user_up_and_see_the_ban(gw: Gateway) -> None:
    network = await gw.network()
    other = await gw.network()
    admin = await gw.admin_token(network, "ann", "admin")
    moderator = await gw.admin_token(network, "mo", "moderator")
    session = await gw.login(network, user_id="gina", displayName="Gina")
    [created] = session["users"]

    status, body, _ = await gw.call("GET", "/api/v3/users/gina/ban", moderator)
    assert status == 200 and body == {"users": [created]}  # the sessions' user JSON
    await gw.call("POST", "/api/v3/users/gina/ban", admin)
    _, body, _ = await gw.call("GET", "/api/v3/users/gina/ban", admin)
    assert body["users"][0]["isGlobalBanned"] is True
    assert body["users"][0]["userId"] == "gina" and body["users"][0]["displayName"] == "Gina"

    assert (await gw.call("GET", "/api/v3/users/nobody/ban", admin))[1] == error(
        404, "userId Not Found.")
    # One network's admins never see another's users.
    stranger = await gw.admin_token(other, "ann", "admin")
    assert (await gw.call("GET", "/api/v3/users/gina/ban", stranger))[1] == error(
        404, "userId Not Found.")
    # End users may not; they are not even checked against the upstream's user API.
    token = session["accessToken"]
    assert (await gw.call("GET", "/api/v3/users/gina/ban", token))[1] == error(
        403, "Permission denied")


async def test_the_platforms_user_path_is_still_forwarded(gw: Gateway) -> None:
    network = await gw.network()
    session = await gw.login(network, user_id="gina")
    status, _body, response = await gw.call("GET", "/api/v3/users/gina", session["accessToken"])
    assert status == 200 and "X-Upstream" in response.headers

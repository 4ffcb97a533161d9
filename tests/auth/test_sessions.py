"""Client sessions (API.md section 3) against a running gateway with the shipped policies."""

from __future__ import annotations

import re

import jwt
import pytest

from gateway.auth.loader import load_token_service
from gateway.errors import GatewayError
from gateway.keys import RUNTIME, TOKENS
from gateway.testing.support import Clock
from tests.auth.conftest import Gateway, error

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DAY = 86400


@pytest.mark.parametrize(
    "path", ["/api/v3/sessions", "/api/v4/sessions", "/api/v5/sessions", "/api/v3/session"]
)
async def test_login_answers_the_sdk_shape(gw: Gateway, path: str) -> None:
    network = await gw.network()
    body = await gw.login(network, user_id="Alice.Ünicode", path=path, displayName="Alice")
    assert set(body) == {"accessToken", "issuedAt", "expiresAt", "users"}
    assert ISO.match(body["issuedAt"]) and ISO.match(body["expiresAt"])
    (user,) = body["users"]
    assert user["userId"] == "Alice.Ünicode" and user["displayName"] == "Alice"
    assert user["isGlobalBanned"] is False and len(user["_id"]) == 24
    assert user["path"] == f"{network.id}/user/{user['_id']}"  # the SDK's MQTT topics
    assert ISO.match(user["createdAt"]) and ISO.match(user["updatedAt"])

    header = jwt.get_unverified_header(body["accessToken"])
    assert header["alg"] == "ES256" and header["kid"]
    status, jwks, _ = await gw.call("GET", "/.well-known/jwks.json")
    assert status == 200
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    issuer = gw.app[TOKENS].issuer  # tokens.issuer: the HTTPS listener's URL by default
    assert issuer.startswith("https://")
    claims = jwt.decode(body["accessToken"], jwt.PyJWK.from_dict(key).key, algorithms=["ES256"],
                        issuer=issuer)
    assert claims["sub"] == "Alice.Ünicode" and claims["nid"] == network.id
    assert claims["kind"] == "access" and claims["did"] == "dev-1"
    assert claims["exp"] - claims["iat"] == DAY  # unsecure mode: 1 day
    assert len(claims["jti"]) == 32


async def test_wrong_or_missing_api_key_is_401(gw: Gateway) -> None:
    body = {"userId": "u", "deviceId": "d"}
    for headers in ({}, {"x-api-key": "nope"}):
        status, answer, _ = await gw.call("POST", "/api/v3/sessions", json=body, headers=headers)
        assert (status, answer) == (401, error(401, "Unauthorized"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"deviceId": "d"}, "userId"),
        ({"userId": "", "deviceId": "d"}, "userId"),
        ({"userId": "u" * 51, "deviceId": "d"}, "userId"),
        ({"userId": 5, "deviceId": "d"}, "userId"),
        ({"userId": "u"}, "deviceId"),
        ({"userId": "u", "deviceId": "d" * 151}, "deviceId"),
        ({"userId": "u", "deviceId": "d", "displayName": "n" * 101}, "displayName"),
        ({"userId": "u", "deviceId": "d", "deviceInfo": {"kind": "toaster"}}, "deviceInfo.kind"),
        ({"userId": "u", "deviceId": "d", "deviceInfo": {"model": "m" * 501}},
         "deviceInfo.model"),
        ({"userId": "u", "deviceId": "d", "deviceInfo": {"sdkVersion": "v" * 31}},
         "deviceInfo.sdkVersion"),
        ({"userId": "u", "deviceId": "d", "deviceInfo": "web"}, "deviceInfo"),
        ({"userId": "u", "deviceId": "d", "authToken": 7}, "authToken"),
        ({"userId": "u\r\nX-Gateway-Role: admin", "deviceId": "d"}, "userId"),
        ({"userId": "u", "deviceId": "d\x00"}, "deviceId"),
    ],
)
async def test_bad_fields_are_400_naming_the_field(
    gw: Gateway, body: dict[str, object], field: str
) -> None:
    network = await gw.network()
    status, answer, _ = await gw.call("POST", "/api/v3/sessions", json=body,
                                      headers={"x-api-key": network.api_key})
    assert status == 400 and answer["code"] == 400000
    assert answer["message"].startswith(field + " ")
    assert await gw.store.get_user(network.id, "u") is None  # nothing changed


async def test_malformed_and_oversized_bodies(gw: Gateway) -> None:
    network = await gw.network()
    headers = {"x-api-key": network.api_key, "Content-Type": "application/json"}
    for raw in (b"{", b"[1]", b"\xff\xfe", b"NaN", b"[" * 100000):
        status, answer, _ = await gw.call("POST", "/api/v3/sessions", data=raw, headers=headers)
        assert status == 400 and answer["code"] == 400000, raw[:10]
    status, answer, _ = await gw.call("POST", "/api/v3/sessions", data=b" " * (1 << 20 + 1),
                                      headers=headers)
    assert (status, answer) == (413, error(413, "request too large"))


async def test_stale_authorization_is_ignored_and_display_name_updates(gw: Gateway) -> None:
    network = await gw.network()
    first = await gw.login(network, user_id="bob", displayName="Bob")
    status, answer, _ = await gw.call(
        "POST", "/api/v5/sessions", headers={"x-api-key": network.api_key,
                                             "Authorization": "Bearer expired.garbage.token",
                                             "set-access-token-cookie": "true"},
        json={"userId": "bob", "deviceId": "dev-1", "displayName": "Robert"})
    assert status == 200
    assert answer["users"][0]["displayName"] == "Robert"
    assert answer["users"][0]["_id"] == first["users"][0]["_id"]


async def test_proxied_calls_carry_the_identity_and_ignore_spoofing(gw: Gateway) -> None:
    network = await gw.network()
    token = (await gw.login(network, user_id="carol"))["accessToken"]
    status, echoed, _ = await gw.call("GET", "/api/v3/things", token, headers={
        "X-Gateway-User-Id": "mallory", "X-Gateway-Role": "super-admin"})
    assert status == 200
    seen = {k.lower(): v for k, v in echoed["headers"]}
    assert seen["x-gateway-user-id"] == "carol"
    assert seen["x-gateway-network-id"] == network.id
    assert seen["x-gateway-token-kind"] == "access"
    assert seen["x-gateway-role"] == "user"
    assert "authorization" not in seen  # the gateway's credential stops at the gateway
    status, answer, _ = await gw.call("GET", "/api/v3/things")
    assert (status, answer) == (401, error(401, "Unauthorized"))


async def test_session_check(gw: Gateway) -> None:
    network = await gw.network()
    login = await gw.login(network, user_id="dave")
    status, answer, _ = await gw.call("GET", "/api/v3/sessions", login["accessToken"])
    assert (status, answer) == (200, {"valid": True, "userId": "dave",
                                      "expiresAt": login["expiresAt"]})
    admin = await gw.admin_token(network, "root", "admin")
    status, answer, _ = await gw.call("GET", "/api/v3/sessions", admin)
    assert (status, answer) == (401, error(401, "Invalid token"))


async def test_access_tokens_expire(gw: Gateway, clock: Clock) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    clock.advance(DAY + 29)  # within the 30 s leeway
    assert (await gw.call("GET", "/api/v3/things", token))[0] == 200
    clock.advance(2)
    status, answer, _ = await gw.call("GET", "/api/v3/things", token)
    assert (status, answer) == (401, error(401, "token expired"))


async def test_a_new_user_on_a_device_invalidates_its_earlier_tokens(gw: Gateway) -> None:
    network = await gw.network()
    alice_1 = (await gw.login(network, user_id="alice", device_id="phone"))["accessToken"]
    alice_other = (await gw.login(network, user_id="alice", device_id="tablet"))["accessToken"]
    alice_2 = (await gw.login(network, user_id="alice", device_id="phone"))["accessToken"]
    assert (await gw.call("GET", "/api/v3/x", alice_1))[0] == 200  # same user: no change
    bob = (await gw.login(network, user_id="bob", device_id="phone"))["accessToken"]
    for stale in (alice_1, alice_2):
        status, answer, _ = await gw.call("GET", "/api/v3/x", stale)
        assert (status, answer) == (401, error(401, "Invalid token"))
    assert (await gw.call("GET", "/api/v3/x", bob))[0] == 200
    assert (await gw.call("GET", "/api/v3/x", alice_other))[0] == 200  # another device
    alice_3 = (await gw.login(network, user_id="alice", device_id="phone"))["accessToken"]
    assert (await gw.call("GET", "/api/v3/x", alice_3))[0] == 200
    assert (await gw.call("GET", "/api/v3/x", alice_1))[0] == 401  # still, from then on
    assert (await gw.call("GET", "/api/v3/x", bob))[0] == 401


async def test_revoking_ones_own_token(gw: Gateway) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    other = (await gw.login(network, device_id="dev-2"))["accessToken"]
    status, answer, _ = await gw.call("DELETE", "/api/v4/sessions", token)
    assert (status, answer) == (200, {"success": True})
    assert (await gw.call("GET", "/api/v3/x", token))[1] == error(401, "Invalid token")
    assert (await gw.call("GET", "/api/v3/x", other))[0] == 200


async def test_admins_revoke_all_of_a_users_tokens(gw: Gateway) -> None:
    network = await gw.network()
    tokens = [(await gw.login(network, user_id="erin", device_id=f"d{i}"))["accessToken"]
              for i in range(3)]
    bystander = (await gw.login(network, user_id="frank", device_id="f"))["accessToken"]
    moderator = await gw.admin_token(network, "mod", "moderator")
    admin = await gw.admin_token(network, "adm", "admin")

    for token in (moderator, bystander):
        status, answer, _ = await gw.call("DELETE", "/api/v4/sessions?userId=erin", token)
        assert (status, answer) == (403, error(403, "Permission denied"))
    status, answer, _ = await gw.call("DELETE", "/api/v4/sessions?userId=nobody", admin)
    assert (status, answer) == (404, error(404, "userId Not Found."))
    status, answer, _ = await gw.call("DELETE", "/api/v4/sessions?userId=erin", admin)
    assert (status, answer) == (200, {"success": True})
    for token in tokens:
        assert (await gw.call("GET", "/api/v3/x", token))[0] == 401
    assert (await gw.call("GET", "/api/v3/x", bystander))[0] == 200

    status, answer, _ = await gw.call("DELETE", "/api/v4/sessions/users/frank", moderator)
    assert (status, answer) == (403, error(403, "Permission denied"))
    status, answer, _ = await gw.call("DELETE", "/api/v4/sessions/users/ghost", admin)
    assert (status, answer) == (404, error(404, "userId Not Found."))
    status, answer, _ = await gw.call("DELETE", "/api/v4/sessions/users/frank", admin)
    assert (status, answer) == (200, {"success": True})
    assert (await gw.call("GET", "/api/v3/x", bystander))[0] == 401


async def test_revocations_survive_a_restart(gw: Gateway) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    await gw.call("DELETE", "/api/v4/sessions", token)
    config = gw.app[RUNTIME].current.config
    fresh = await load_token_service(config, gw.store, gw.store.clock)  # a new process's view
    with pytest.raises(GatewayError, match=r"^Invalid token$"):
        await fresh.verify(token)


async def test_global_ban(gw: Gateway) -> None:
    network = await gw.network()
    token = (await gw.login(network, user_id="gina"))["accessToken"]
    admin = await gw.admin_token(network, "adm", "admin")
    moderator = await gw.admin_token(network, "mod", "moderator")
    assert (await gw.call("POST", "/api/v3/users/gina/ban", moderator))[1] == error(
        403, "Permission denied")
    assert (await gw.call("POST", "/api/v3/users/nobody/ban", admin))[1] == error(
        404, "userId Not Found.")
    assert (await gw.call("POST", "/api/v3/users/gina/ban", admin))[1] == {"success": True}
    banned = error(403, "User is global banned.")
    assert (await gw.call("GET", "/api/v3/x", token))[1] == banned
    assert (await gw.call("GET", "/api/v3/sessions", token))[1] == banned
    assert await gw.login(network, user_id="gina", expect=403) == banned
    assert (await gw.call("DELETE", "/api/v3/users/gina/ban", admin))[1] == {"success": True}
    assert (await gw.call("GET", "/api/v3/x", token))[0] == 200  # banning revoked nothing

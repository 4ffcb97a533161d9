"""Secure mode: server keys, single-use auth tokens bound to a user and network."""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

import jwt
import pytest

from gateway.auth.secrets import hash_secret
from gateway.store import Network
from gateway.testing.support import Clock
from tests.auth.conftest import Gateway, error

DAY = 86400


async def _server_key(gw: Gateway, network: Network) -> str:
    admin = await gw.admin_token(network, "keeper", "admin")
    status, body, _ = await gw.call("POST", "/api/v3/networks/server-key", admin)
    assert status == 200 and set(body) == {"serverKey"}
    return str(body["serverKey"])


async def _auth_token(gw: Gateway, key: str, user_id: str, v4: bool = False) -> str:
    if v4:
        status, body, response = await gw.call(
            "POST", "/api/v4/authentication/token", headers={"x-server-key": key},
            json={"userId": user_id})
        assert status == 200 and response.content_type == "text/plain"
        return str(body)
    status, body, response = await gw.call(
        "GET", f"/api/v3/authentication/token?userId={user_id}", headers={"x-server-key": key})
    assert status == 200 and response.content_type == "application/json"
    assert isinstance(body, str)
    return body


async def test_secure_login_gives_a_30_day_token_and_uses_the_auth_token_up(gw: Gateway) -> None:
    network = await gw.network(secure=True)
    key = await _server_key(gw, network)
    for v4 in (False, True):
        auth = await _auth_token(gw, key, "sam", v4=v4)
        body = await gw.login(network, user_id="sam", authToken=auth)
        claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 30 * DAY
        again = await gw.login(network, user_id="sam", authToken=auth, expect=401)
        assert again == error(401, "Invalid token")


async def test_secure_login_refusals(gw: Gateway, clock: Clock) -> None:
    network = await gw.network(secure=True)
    other = await gw.network(secure=True)
    key = await _server_key(gw, network)
    other_key = await _server_key(gw, other)

    assert await gw.login(network, user_id="sam", expect=401) == error(401, "Unauthorized")
    for auth in (
        await _auth_token(gw, key, "someone-else"),  # another user's
        await _auth_token(gw, other_key, "sam"),  # another network's
        "garbage",
    ):
        assert await gw.login(network, user_id="sam", authToken=auth, expect=401) == error(
            401, "Invalid token")
    late = await _auth_token(gw, key, "sam")
    clock.advance(10 * 60 + 31)  # 10 minutes + leeway
    assert await gw.login(network, user_id="sam", authToken=late, expect=401) == error(
        401, "token expired")
    assert await gw.store.get_user(network.id, "sam") is None  # no user made by failures


async def test_server_key_rules(gw: Gateway) -> None:
    network = await gw.network(secure=True)
    first = await _server_key(gw, network)
    second = await _server_key(gw, network)
    assert first != second
    for key in (first, "", "made-up"):
        status, body, _ = await gw.call(
            "GET", "/api/v3/authentication/token?userId=u", headers={"x-server-key": key})
        assert (status, body) == (401, error(401, "Unauthorized"))
    assert await _auth_token(gw, second, "u")

    admin = await gw.admin_token(network, "keeper", "admin")
    status, info, _ = await gw.call("GET", "/api/v3/networks/server-key", admin)
    assert status == 200 and set(info) == {"updatedAt", "updatedBy"}
    assert info["updatedBy"] == "keeper" and second not in json.dumps(info)

    boss = await gw.admin_token(network, "boss", "super-admin")
    status, body, _ = await gw.call("POST", "/api/v3/networks/server-key", boss)
    assert (status, body) == (403, error(403, "Permission denied"))
    moderator = await gw.admin_token(network, "mod", "moderator")
    status, body, _ = await gw.call("POST", "/api/v3/networks/server-key", moderator)
    assert (status, body) == (403, error(403, "Permission denied"))
    user = (await gw.login(network, user_id="u", authToken=await _auth_token(gw, second, "u")))
    status, body, _ = await gw.call("POST", "/api/v3/networks/server-key", user["accessToken"])
    assert (status, body) == (403, error(403, "Permission denied"))


async def test_auth_tokens_need_secure_mode(gw: Gateway) -> None:
    network = await gw.network(secure=True)
    key = await _server_key(gw, network)
    await gw.store.set_network_flags(network.id, secure=False)
    status, body, _ = await gw.call(
        "POST", "/api/v4/authentication/token", headers={"x-server-key": key},
        json={"userId": "u"})
    assert status == 403 and body["code"] == 400300 and "secure mode" in body["message"]


async def test_auth_token_field_checks(gw: Gateway) -> None:
    network = await gw.network(secure=True)
    key = await _server_key(gw, network)
    for query in ("", "?userId=", "?userId=" + "u" * 51):
        status, body, _ = await gw.call(
            "GET", f"/api/v3/authentication/token{query}", headers={"x-server-key": key})
        assert status == 400 and body["message"].startswith("userId ")
    status, body, _ = await gw.call("POST", "/api/v4/authentication/token",
                                    headers={"x-server-key": key}, data=b"not json")
    assert status == 400


async def test_an_auth_token_issued_before_a_ban_works_after_it_is_lifted(gw: Gateway) -> None:
    network = await gw.network(secure=True)
    key = await _server_key(gw, network)
    await gw.login(network, user_id="bea", authToken=await _auth_token(gw, key, "bea"))
    admin = await gw.admin_token(network, "adm", "admin")
    await gw.call("POST", "/api/v3/users/bea/ban", admin)
    pending = await _auth_token(gw, key, "bea")  # a banned user can still be issued one
    assert await gw.login(network, user_id="bea", authToken=pending, expect=403) == error(
        403, "User is global banned.")
    await gw.call("DELETE", "/api/v3/users/bea/ban", admin)
    assert (await gw.login(network, user_id="bea", authToken=pending))["accessToken"]


async def test_an_auth_token_asked_with_a_server_key_replaced_meanwhile_is_not_made(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server key is replaced after the gate admitted the request (its body may
    trickle in for long) but before the auth token is written: none is made, and the
    answer is the gate's for that key now."""
    network = await gw.network(secure=True)
    key = await _server_key(gw, network)
    create_auth_token = gw.store.create_auth_token
    made: list[str] = []

    async def raced(token_hash: str, *args: Any) -> None:
        # An admin replaces the key on another worker (a context of its own).
        await asyncio.create_task(
            gw.store.set_server_key_hash(network.id, hash_secret("the-new-key"), "keeper"),
            context=contextvars.Context())
        made.append(token_hash)
        await create_auth_token(token_hash, *args)

    monkeypatch.setattr(gw.store, "create_auth_token", raced)
    status, body, _ = await gw.call(
        "POST", "/api/v4/authentication/token", headers={"x-server-key": key},
        json={"userId": "u"})
    assert (status, body) == (401, error(401, "Unauthorized"))
    [token_hash] = made
    assert await gw.store.consume_auth_token(token_hash, network.id, "u", 0.0) == "invalid"

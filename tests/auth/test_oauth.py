"""RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata against a real gateway.

The first tests replay the RFCs' own example requests (their tokens, bodies and headers)
and check the shapes of the answers the RFCs show; the rest go through every way a token
stops being valid, and who may revoke what.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.auth.secrets import hash_secret
from gateway.auth.tokens import ISSUER, TokenService
from gateway.keys import TOKENS
from gateway.store import Network
from gateway.testing.support import Clock
from tests.auth.conftest import Gateway, error

DAY = 86400
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INACTIVE = {"active": False}


async def _server_key(gw: Gateway, network: Network, key: str | None = None) -> str:
    key = key or f"server-key-{network.id}"
    await gw.store.set_server_key_hash(network.id, hash_secret(key), "test")
    return key


async def _introspect(gw: Gateway, token: str, *, key: str | None = None,
                      bearer: str | None = None, **form: str) -> tuple[int, Any, Any]:
    headers = {"x-server-key": key} if key is not None else {}
    return await gw.call("POST", "/oauth2/introspect", bearer, headers=headers,
                         data={"token": token, **form})


async def _revoke(gw: Gateway, token: str, *, key: str | None = None,
                  bearer: str | None = None, **form: str) -> tuple[int, Any, Any]:
    headers = {"x-server-key": key} if key is not None else {}
    return await gw.call("POST", "/oauth2/revoke", bearer, headers=headers,
                         data={"token": token, **form})


async def _audit(gw: Gateway, network: Network) -> list[dict[str, Any]]:
    admin = await gw.admin_token(network, "auditor", "admin")
    status, body, _ = await gw.call("GET", "/api/v3/audit-logs", admin)
    assert status == 200, body
    return [e for e in body["auditLogs"] if e["action"] == "token.revoke"]


async def _works(gw: Gateway, token: str) -> bool:
    """Whether a proxied call with the token reaches the upstream."""
    status, body, _ = await gw.call("GET", "/api/v3/things", token)
    assert status in (200, 401, 403), body
    return status == 200


# -- the RFCs' examples ----------------------------------------------------------------


async def test_rfc7662_example_request_for_an_unknown_token(gw: Gateway) -> None:
    """Section 2.1's request as printed (its token is not one of ours) and section 2.2's
    answer for it: `{"active": false}`, nothing else."""
    network = await gw.network()
    key = await _server_key(gw, network)
    status, body, response = await gw.call(
        "POST", "/oauth2/introspect", headers={**FORM, "Accept": "application/json",
                                               "x-server-key": key},
        data=b"token=mF_9.B5f-4.1JqM&token_type_hint=access_token")
    assert (status, body) == (200, INACTIVE)
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


async def test_rfc7662_active_answer_has_the_members_of_section_2_2(gw: Gateway) -> None:
    network = await gw.network()
    key = await _server_key(gw, network)
    login = await gw.login(network, user_id="jdoe", device_id="phone")
    token = login["accessToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    status, body, _ = await _introspect(gw, token, key=key, token_type_hint="access_token")
    assert status == 200
    assert body == {
        "active": True, "token_type": "Bearer", "client_id": network.id, "sub": "jdoe",
        "iss": claims["iss"], "iat": claims["iat"], "exp": claims["exp"],
        "jti": claims["jti"], "nid": network.id, "kind": "access", "role": "user",
        "did": "phone",
    }
    assert isinstance(body["exp"], int) and isinstance(body["iat"], int)


async def test_rfc7009_example_request_for_an_unknown_token(gw: Gateway) -> None:
    """Section 2.1's request as printed: an unknown token is still a 200 (section 2.2),
    with nothing in the body."""
    network = await gw.network()
    key = await _server_key(gw, network)
    status, body, _ = await gw.call(
        "POST", "/oauth2/revoke", headers={**FORM, "x-server-key": key},
        data=b"token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token")
    assert (status, body) == (200, "")


async def test_rfc7009_unsupported_token_type(gw: Gateway) -> None:
    """Section 2.2.1: a token type the server cannot revoke is `unsupported_token_type`."""
    network = await gw.network()
    key = await _server_key(gw, network)
    token = (await gw.login(network))["accessToken"]
    status, body, response = await _revoke(gw, token, key=key, token_type_hint="id_token")
    assert status == 400 and body["error"] == "unsupported_token_type"
    assert response.headers["Cache-Control"] == "no-store"
    assert await _works(gw, token)  # refused: nothing revoked


async def test_rfc8414_metadata_names_the_endpoints_under_the_issuer(gw: Gateway) -> None:
    status, body, response = await gw.call("GET", "/.well-known/oauth-authorization-server")
    assert status == 200 and response.content_type == "application/json"
    issuer = body["issuer"]
    assert issuer == gw.app[TOKENS].issuer and issuer.startswith("https://")
    assert body["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert body["introspection_endpoint"] == f"{issuer}/oauth2/introspect"
    assert body["revocation_endpoint"] == f"{issuer}/oauth2/revoke"
    assert body["response_types_supported"] == [] and body["grant_types_supported"] == []
    assert "Bearer" in body["introspection_endpoint_auth_methods_supported"]
    # New tokens carry the issuer the metadata announces.
    token = (await gw.login(await gw.network()))["accessToken"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == issuer


# -- request errors (RFC 6749 section 5.2 shapes) --------------------------------------


async def test_malformed_requests_are_invalid_request(gw: Gateway) -> None:
    network = await gw.network()
    key = await _server_key(gw, network)
    headers = {**FORM, "x-server-key": key}
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        for data in (b"", b"token=", b"token_type_hint=access_token", b"token=a&token=b",
                     b"token=%ff"):
            status, body, response = await gw.call("POST", path, headers=headers, data=data)
            assert (status, body["error"]) == (400, "invalid_request"), (path, data)
            assert response.headers["Cache-Control"] == "no-store"
        status, body, _ = await gw.call(
            "POST", path, headers={"Content-Type": "text/plain", "x-server-key": key},
            data=b"token=abc")
        assert (status, body["error"]) == (400, "invalid_request")
        # One client authentication per request (RFC 6749 section 2.3).
        admin = await gw.admin_token(network, "ann", "admin")
        status, body, _ = await gw.call("POST", path, admin, headers={"x-server-key": key},
                                        data={"token": "abc"})
        assert (status, body["error"]) == (400, "invalid_request")
        # Other methods are the contract's 405.
        assert (await gw.call("GET", path))[:2] == (405, error(405, "Method Not Allowed"))


async def test_without_valid_client_credentials_it_is_invalid_client(
    gw: Gateway, clock: Clock
) -> None:
    network = await gw.network()
    await _server_key(gw, network)
    expired = await gw.admin_token(network, "old", "admin")
    clock.advance(DAY + 60)
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        for headers in ({}, {"x-server-key": "wrong"}, {"Authorization": f"Bearer {expired}"},
                        {"Authorization": "Bearer garbage"}):
            status, body, response = await gw.call("POST", path, headers=headers,
                                                   data={"token": "abc"})
            assert (status, body["error"]) == (401, "invalid_client"), (path, headers)
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="gateway"')
            assert ('error="invalid_token"' in challenge) == ("Authorization" in headers)


async def test_introspection_is_for_admins_and_server_keys(gw: Gateway) -> None:
    """A valid credential without the privilege: 401 as RFC 7662 section 2.3 says, with
    `insufficient_scope`. Moderators and end users may not introspect."""
    network = await gw.network()
    token = (await gw.login(network, user_id="bob"))["accessToken"]
    moderator = await gw.admin_token(network, "mo", "moderator")
    for caller in (moderator, token):
        status, body, response = await _introspect(gw, token, bearer=caller)
        assert (status, body["error"]) == (401, "insufficient_scope")
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    for role in ("admin", "super-admin"):
        admin = await gw.admin_token(network, role, role)
        assert (await _introspect(gw, token, bearer=admin))[1]["active"] is True


async def test_a_console_session_introspects_with_json(gw: Gateway) -> None:
    """The console cookie writes JSON only (CSRF), so the endpoints also read JSON."""
    from gateway.auth.passwords import hash_password

    network = await gw.network()
    await gw.store.create_admin(network.id, "cora", "admin", hash_password("pw", log2_n=10))
    status, _, response = await gw.call("POST", "/console/v1/login",
                                        headers={"x-api-key": network.api_key},
                                        json={"username": "cora", "password": "pw"})
    assert status == 200
    cookie = {"Cookie": f"gateway_console={response.cookies['gateway_console'].value}"}
    gw.session.cookie_jar.clear()
    token = (await gw.login(network))["accessToken"]
    status, body, _ = await gw.call("POST", "/oauth2/introspect", headers=cookie,
                                    json={"token": token})
    assert status == 200 and body["active"] is True and body["sub"] == "alice"
    # A form riding on the cookie is what a hostile page could send: refused, as ever.
    status, body, _ = await gw.call("POST", "/oauth2/introspect", headers=cookie,
                                    data={"token": token})
    assert status == 415


# -- introspection: every way of not being valid now -----------------------------------


async def test_every_invalid_token_is_inactive(gw: Gateway, clock: Clock) -> None:
    network = await gw.network()
    key = await _server_key(gw, network)
    admin = await gw.admin_token(network, "ann", "admin")

    revoked = (await gw.login(network, user_id="rev", device_id="d-rev"))["accessToken"]
    assert (await gw.call("DELETE", "/api/v4/sessions", revoked))[0] == 200
    banned = (await gw.login(network, user_id="ban", device_id="d-ban"))["accessToken"]
    assert (await gw.call("POST", "/api/v3/users/ban/ban", admin))[0] == 200
    # Another user registers the device: the earlier token bound to it stops.
    rebound = (await gw.login(network, user_id="first", device_id="shared"))["accessToken"]
    await gw.login(network, user_id="second", device_id="shared")
    foreign = jwt.encode({"iss": ISSUER, "sub": "x", "iat": int(clock.now),
                          "exp": int(clock.now) + 60, "jti": "j", "nid": network.id,
                          "kind": "access"}, "s" * 32, algorithm="HS256")
    for token in (revoked, banned, rebound, foreign, "garbage", "a.b.c", "x" * 5000):
        assert (await _introspect(gw, token, key=key))[:2] == (200, INACTIVE), token[:40]

    expiring = (await gw.login(network, user_id="late", device_id="d-late"))["accessToken"]
    assert (await _introspect(gw, expiring, key=key))[1]["active"] is True
    clock.advance(DAY + 29)  # within the leeway: requests still pass, so it is active
    assert (await _introspect(gw, expiring, key=key))[1]["active"] is True
    clock.advance(2)
    assert (await _introspect(gw, expiring, key=key))[:2] == (200, INACTIVE)


async def test_a_superseded_admin_token_is_active_until_its_grace_ends(
    gw: Gateway, clock: Clock
) -> None:
    network = await gw.network()
    key = await _server_key(gw, network)
    await gw.store.create_admin(network.id, "ann", "admin", "x")
    old, credential = await gw.app[TOKENS].issue_admin(network.id, "ann", "admin", 365 * DAY)
    await gw.store.rotate_admin_token(credential, DAY)
    status, _, _ = await gw.call("POST", "/api/v1/admin-token", old)
    assert status == 200
    status, body, _ = await _introspect(gw, old, key=key)
    assert body["active"] is True and body["kind"] == "admin" and body["role"] == "admin"
    assert body["username"] == "ann"
    # In its grace it may not introspect others (it reads credentials).
    status, body, response = await _introspect(gw, old, bearer=old)
    assert (status, body["error"]) == (401, "insufficient_scope")
    assert "Warning" in response.headers
    clock.advance(DAY + 60)
    assert (await _introspect(gw, old, key=key))[:2] == (200, INACTIVE)


async def test_another_networks_token_is_inactive(gw: Gateway) -> None:
    mine, theirs = await gw.network(), await gw.network()
    my_key, their_key = await _server_key(gw, mine), await _server_key(gw, theirs)
    token = (await gw.login(theirs))["accessToken"]
    admin = await gw.admin_token(mine, "ann", "admin")
    assert (await _introspect(gw, token, key=my_key))[:2] == (200, INACTIVE)
    assert (await _introspect(gw, token, bearer=admin))[:2] == (200, INACTIVE)
    assert (await _introspect(gw, token, key=their_key))[1]["active"] is True


async def test_tokens_issued_with_the_old_issuer_keep_working(gw: Gateway) -> None:
    """Tokens signed before `tokens.issuer` carry iss "gateway": valid until they expire.
    Any other issuer is refused."""
    network = await gw.network()
    key = await _server_key(gw, network)
    current = gw.app[TOKENS]
    assert current.issuer != ISSUER
    before = TokenService(current.ring, current.state, current.sealer,
                          algorithms=("ES256",), leeway=current.leeway)
    old, credential = await before.issue(kind="access", network_id=network.id,
                                         subject="olga", ttl=3600)
    await gw.store.record_credential(credential)
    assert jwt.decode(old, options={"verify_signature": False})["iss"] == ISSUER
    assert await _works(gw, old)
    body = (await _introspect(gw, old, key=key))[1]
    assert body["active"] is True and body["iss"] == ISSUER
    evil = TokenService(current.ring, current.state, current.sealer,
                        algorithms=("ES256",), leeway=current.leeway, issuer="https://evil")
    forged, _ = await evil.issue(kind="access", network_id=network.id, subject="eve",
                                 ttl=3600)
    assert not await _works(gw, forged)
    assert (await _introspect(gw, forged, key=key))[:2] == (200, INACTIVE)


# -- revocation ---------------------------------------------------------------------------


async def test_the_holder_revokes_its_own_token(gw: Gateway) -> None:
    network = await gw.network()
    token = (await gw.login(network, user_id="bob"))["accessToken"]
    assert await _works(gw, token)
    status, body, _ = await _revoke(gw, token, bearer=token)
    assert (status, body) == (200, "")
    assert (await gw.call("GET", "/api/v3/things", token))[:2] == (
        401, error(401, "Invalid token"))
    # Revoking it again is still a 200: the token is invalid now (RFC 7009 section 2.2).
    key = await _server_key(gw, network)
    assert (await _revoke(gw, token, key=key))[:2] == (200, "")
    entries = await _audit(gw, network)
    assert [(e["actor"], e["actorRole"], e["target"]) for e in entries] == [
        ("bob", "user", "bob")]


async def test_an_admin_and_the_server_key_revoke_users_tokens(gw: Gateway) -> None:
    network = await gw.network()
    key = await _server_key(gw, network)
    admin = await gw.admin_token(network, "ann", "admin")
    first = (await gw.login(network, user_id="u1", device_id="d1"))["accessToken"]
    second = (await gw.login(network, user_id="u2", device_id="d2"))["accessToken"]
    assert (await _revoke(gw, first, bearer=admin))[:2] == (200, "")
    assert (await _revoke(gw, second, key=key, token_type_hint="access_token"))[:2] == (
        200, "")
    assert not await _works(gw, first) and not await _works(gw, second)
    entries = await _audit(gw, network)
    assert {(e["actor"], e["actorRole"], e["target"]) for e in entries} == {
        ("ann", "admin", "u1"), ("server-key", "server", "u2")}


async def test_revocation_is_refused_for_a_token_that_is_not_the_callers(
    gw: Gateway,
) -> None:
    """RFC 7009 section 2.1: the server checks the token was issued to the client asking;
    a live token someone else holds is refused with 400 `unauthorized_client`, and stays
    valid. Invalid tokens are a 200 whoever asks (nothing to protect)."""
    network, other = await gw.network(), await gw.network()
    key, other_key = await _server_key(gw, network), await _server_key(gw, other)
    alice = (await gw.login(network, user_id="alice", device_id="da"))["accessToken"]
    bob = (await gw.login(network, user_id="bob", device_id="db"))["accessToken"]
    admin = await gw.admin_token(network, "ann", "admin")
    peer = await gw.admin_token(network, "pat", "admin")
    moderator = await gw.admin_token(network, "mo", "moderator")
    foreign_admin = await gw.admin_token(other, "fred", "admin")
    refusals = [
        (alice, {"bearer": bob}),  # another user
        (alice, {"key": other_key}),  # another network's server
        (alice, {"bearer": foreign_admin}),  # another network's admin
        (alice, {"bearer": moderator}),  # moderators revoke nothing
        (admin, {"key": key}),  # the server key: end users' tokens only
        (admin, {"bearer": peer}),  # an admin revokes only their own admin token
        (admin, {"bearer": alice}),
    ]
    for target, who in refusals:
        status, body, response = await _revoke(gw, target, **who)
        assert (status, body["error"]) == (400, "unauthorized_client"), who
        assert response.headers["Cache-Control"] == "no-store"
    assert await _works(gw, alice) and await _works(gw, admin)
    assert await _audit(gw, network) == []
    # Invalid tokens: 200 for anyone with a credential.
    assert (await _revoke(gw, "garbage", bearer=bob))[:2] == (200, "")


async def test_admin_tokens_follow_the_admin_token_revocation_rules(gw: Gateway) -> None:
    network = await gw.network()
    admin = await gw.admin_token(network, "ann", "admin")
    boss = await gw.admin_token(network, "sue", "super-admin")
    moderator = await gw.admin_token(network, "mo", "moderator")
    assert (await _revoke(gw, moderator, bearer=boss))[:2] == (200, "")
    assert (await _revoke(gw, admin, bearer=admin))[:2] == (200, "")  # its own
    assert not await _works(gw, moderator) and not await _works(gw, admin)
    assert await _works(gw, boss)


async def test_a_revoked_token_fails_on_another_instance_through_the_feed(
    gw: Gateway, clock: Clock, tmp_path: Path
) -> None:
    """The revocation is a store write with its feed event: another gateway on the same
    store refuses the token once its feed has caught up."""
    import asyncio

    import aiohttp

    from gateway.testing.support import REPO, free_port, write_config
    from tests.proxy.conftest import in_process_gateway

    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    config = write_config(tmp_path, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [gw.upstream]}},
        "policies": [str(REPO / "policies" / "default.yaml")],
    }, name="second.yaml")
    async with in_process_gateway(config, clock=clock) as (url, _app), \
            aiohttp.ClientSession() as session:

        async def status() -> int:
            async with session.get(f"{url}/api/v3/things",
                                   headers={"Authorization": f"Bearer {token}"}) as response:
                return response.status

        assert await status() == 200
        assert (await _revoke(gw, token, bearer=token))[:2] == (200, "")
        for _ in range(200):
            if await status() == 401:
                break
            await asyncio.sleep(0.02)
        assert await status() == 401


async def test_a_revoke_made_with_a_token_revoked_meanwhile_is_refused_as_oauth_words_it(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's token is revoked after the gate admitted the request but before its
    write: nothing is revoked, and the late refusal has the endpoint's OAuth shape."""
    network = await gw.network()
    admin = await gw.admin_token(network, "ann", "admin")
    user = (await gw.login(network))["accessToken"]
    revoke_token = gw.store.revoke_token

    async def raced(network_id: str, jti: str) -> list[tuple[str, float]]:
        ann = jwt.decode(admin, options={"verify_signature": False})["jti"]
        # Another worker revokes ann's token (a context of its own: not this request's).
        await asyncio.create_task(revoke_token(network.id, ann), context=contextvars.Context())
        return await revoke_token(network_id, jti)

    monkeypatch.setattr(gw.store, "revoke_token", raced)
    status, body, response = await _revoke(gw, user, bearer=admin)
    assert (status, body["error"]) == (401, "invalid_client")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert await _works(gw, user)  # not revoked
    assert not await _works(gw, admin)

"""Admin tokens: retrieve, rotate with a grace window (Warning header), revoke by username."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from gateway.keys import ACCESS_LOG, RUNTIME, STORE, TOKENS
from gateway.store import Network
from gateway.testing.support import REPO, Clock, free_port, write_config
from gateway.testing.upstream import running_upstream
from gateway.timefmt import iso
from tests.auth.conftest import Gateway, error
from tests.proxy.conftest import in_process_gateway

YEAR = 365 * 86400
WARNING = re.compile(
    r'^299 gateway "admin token superseded; valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"$'
)


async def _issued(gw: Gateway, network: Network, username: str, role: str) -> str:
    """An admin token issued the way login and the CLI do: default lifetime, sealed."""
    if await gw.store.admin_by_username(network.id, username) is None:
        await gw.store.create_admin(network.id, username, role, "x")
    config = gw.app[RUNTIME].current.config
    token, credential = await gw.app[TOKENS].issue_admin(
        network.id, username, role, config.tokens.admin_token_ttl)
    await gw.store.rotate_admin_token(credential, config.tokens.admin_rotation_grace)
    return token


async def test_retrieve_the_current_token_with_its_one_year_lifetime(gw: Gateway) -> None:
    network = await gw.network()
    token = await _issued(gw, network, "ann", "admin")
    status, body, _ = await gw.call("GET", "/api/v1/admin-token", token)
    assert status == 200 and body["adminToken"] == token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == YEAR and claims["role"] == "admin"
    assert body["issuedAt"].endswith("Z") and body["expiresAt"].endswith("Z")
    stored = await gw.store.current_admin_token(network.id, "ann")
    assert stored is not None and token not in str(stored["sealed_token"])  # sealed at rest


async def test_rotation_keeps_the_old_token_for_24_hours_with_a_warning(
    gw: Gateway, clock: Clock
) -> None:
    network = await gw.network()
    old = await _issued(gw, network, "ann", "admin")
    status, body, _ = await gw.call("POST", "/api/v1/admin-token", old)
    assert status == 200
    new = body["adminToken"]
    assert new != old
    status, _, response = await gw.call("GET", "/api/v3/things", old)
    assert status == 200 and WARNING.match(response.headers["Warning"])
    # The old token may not read the token that replaced it, nor mint another.
    status, current, response = await gw.call("GET", "/api/v1/admin-token", old)
    assert (status, current["code"]) == (403, 400301) and "Warning" in response.headers
    status, current, response = await gw.call("POST", "/api/v1/admin-token", old)
    assert (status, current["message"]) == (403, "Permission denied")
    status, current, _ = await gw.call("GET", "/api/v1/admin-token", new)
    assert status == 200 and current["adminToken"] == new
    assert "Warning" not in (await gw.call("GET", "/api/v3/things", new))[2].headers

    clock.advance(24 * 3600 - 60)
    assert (await gw.call("GET", "/api/v3/things", old))[0] == 200
    clock.advance(120)
    assert (await gw.call("GET", "/api/v3/things", old))[1] == error(401, "Invalid token")
    assert (await gw.call("GET", "/api/v3/things", new))[0] == 200


async def test_super_admins_cannot_generate(gw: Gateway) -> None:
    network = await gw.network()
    boss = await _issued(gw, network, "boss", "super-admin")
    status, body, _ = await gw.call("POST", "/api/v1/admin-token", boss)
    assert (status, body) == (403, error(403, "Permission denied"))


async def test_revocation_rules(gw: Gateway) -> None:
    network = await gw.network()
    other_network = await gw.network()
    ann = await _issued(gw, network, "ann", "admin")
    bob = await _issued(gw, network, "bob", "admin")
    mod = await _issued(gw, network, "mod", "moderator")
    boss = await _issued(gw, network, "boss", "super-admin")
    await _issued(gw, other_network, "zed", "admin")
    user = (await gw.login(network))["accessToken"]

    async def revoke(token: str, username: str) -> tuple[int, object]:
        status, body, _ = await gw.call("DELETE", "/api/v1/admin-token", token,
                                        json={"username": username})
        return status, body

    denied = (403, error(403, "Permission denied"))
    assert await revoke(mod, "mod") == denied  # moderators may not
    assert await revoke(ann, "bob") == denied  # an admin naming another admin
    assert await revoke(user, "ann") == denied  # an end user
    assert await revoke(boss, "ghost") == (404, error(404, "username Not Found."))
    assert await revoke(boss, "zed") == (404, error(404, "username Not Found."))  # other network

    # An admin revokes their own: current and in-grace tokens die together.
    status, body, _ = await gw.call("POST", "/api/v1/admin-token", ann)
    ann_new = body["adminToken"]
    assert await revoke(ann_new, "ann") == (200, {"success": True})
    for token in (ann, ann_new):
        assert (await gw.call("GET", "/api/v3/x", token))[1] == error(401, "Invalid token")

    # A super admin revokes an admin (the username may come in the query too).
    status, body, _ = await gw.call("DELETE", "/api/v1/admin-token?username=bob", boss)
    assert (status, body) == (200, {"success": True})
    assert (await gw.call("GET", "/api/v3/x", bob))[1] == error(401, "Invalid token")
    assert (await gw.call("GET", "/api/v3/x", mod))[0] == 200

    # The next token is a new, different one.
    again = await _issued(gw, network, "bob", "admin")
    assert again != bob and (await gw.call("GET", "/api/v3/x", again))[0] == 200


async def test_username_is_required(gw: Gateway) -> None:
    network = await gw.network()
    boss = await _issued(gw, network, "boss", "super-admin")
    status, body, _ = await gw.call("DELETE", "/api/v1/admin-token", boss)
    assert status == 400 and body["message"].startswith("username ")


async def test_an_admin_token_past_its_year_is_expired(gw: Gateway, clock: Clock) -> None:
    network = await gw.network()
    token = await _issued(gw, network, "ann", "admin")
    clock.advance(YEAR - 60)
    assert (await gw.call("GET", "/api/v3/networks/me", token))[0] == 200
    clock.advance(120)
    status, body, _ = await gw.call("GET", "/api/v3/networks/me", token)
    assert (status, body) == (401, error(401, "token expired"))


async def test_generate_says_until_when_the_previous_token_works(
    gw: Gateway, clock: Clock
) -> None:
    network = await gw.network()
    old = await _issued(gw, network, "ann", "admin")
    status, body, _ = await gw.call("POST", "/api/v1/admin-token", old)
    assert status == 200
    grace_end = body["previousTokenValidUntil"]
    # The same time the Warning header gives to requests made with the old token.
    warning = (await gw.call("GET", "/api/v3/things", old))[2].headers["Warning"]
    assert warning.endswith(f'valid until {grace_end}"')
    assert grace_end == iso(clock.now + 24 * 3600)
    # Generating again supersedes only the token that was current: its own grace end.
    clock.advance(60)
    status, body, _ = await gw.call("POST", "/api/v1/admin-token", body["adminToken"])
    assert body["previousTokenValidUntil"] == iso(clock.now + 24 * 3600)



async def test_without_a_grace_window_the_previous_token_ends_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
        "tokens": {"admin_rotation_grace": "0"},
    })
    async with in_process_gateway(config) as (url, app), aiohttp.ClientSession() as session:
        network = await app[STORE].create_network("n", "sg", False)
        await app[STORE].create_admin(network.id, "ann", "admin", "x")
        old, credential = await app[TOKENS].issue_admin(network.id, "ann", "admin", 3600)
        await app[STORE].rotate_admin_token(credential, 0)
        headers = {"Authorization": f"Bearer {old}"}
        async with session.post(f"{url}/api/v1/admin-token", headers=headers) as response:
            body = await response.json()
        assert response.status == 200
        assert body["previousTokenValidUntil"] == body["issuedAt"]
        async with session.get(f"{url}/api/v1/admin-token", headers=headers) as response:
            assert response.status == 401


async def test_an_admin_token_near_its_end_carries_a_warning(gw: Gateway) -> None:
    network = await gw.network()
    short = await gw.admin_token(network, "eve", "admin")  # one day left: within 30 days
    status, _, response = await gw.call("GET", "/api/v3/things", short)
    assert status == 200 and "expires at" in response.headers["Warning"]
    status, body, _ = await gw.call("POST", "/api/v1/admin-token", short)
    assert status == 200
    status, _, response = await gw.call("GET", "/api/v3/things", body["adminToken"])
    assert status == 200 and "Warning" not in response.headers  # a year left


@asynccontextmanager
async def _ann_with_a_token(
    tmp_path: Path, extra: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[str, web.Application, aiohttp.ClientSession, str]]:
    """A gateway (a real upstream behind it) where admin ann holds one admin token:
    (url, app, client session, token)."""
    async with running_upstream("sg") as upstream:
        config = write_config(tmp_path, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
            **(extra or {}),
        })
        async with in_process_gateway(config) as (url, app), \
                aiohttp.ClientSession() as session:
            store = app[STORE]
            network = await store.create_network("n", "sg", False)
            await store.create_admin(network.id, "ann", "admin", "x")
            token, credential = await app[TOKENS].issue_admin(network.id, "ann", "admin", 3600)
            await store.rotate_admin_token(credential, 0)
            yield url, app, session, token


async def _racing(app: web.Application, change: str) -> str | None:
    """Another worker changes ann's tokens: "revoke" them all, or "rotate" (a new token
    made with another of hers, the current one kept in grace). Returns the new jti.
    Run in a context of its own: called from inside a request, it must not carry that
    request's pending audit entry or acting credential."""
    task = asyncio.create_task(_change(app, change), context=contextvars.Context())
    return await task


async def _change(app: web.Application, change: str) -> str | None:
    store, network_id = app[STORE], (await app[STORE].list_networks())[0].id
    if change == "revoke":
        await store.revoke_admin(network_id, "ann")
        return None
    _, other = await app[TOKENS].issue_admin(network_id, "ann", "admin", 3600)
    await store.rotate_admin_token(other, 3600)
    return other.jti


async def _answer(session: aiohttp.ClientSession, method: str, url: str, token: str
                  ) -> tuple[int, Any, str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.request(method, url, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("Warning", "")


@pytest.mark.parametrize(("change", "status", "message"), [
    ("revoke", 401, "Invalid token"),
    ("rotate", 403, "Permission denied"),  # a superseded token may not read its successor
])
async def test_reading_the_token_after_a_racing_change_answers_as_the_gate_now_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, status: int, message: str,
) -> None:
    """The change commits after the gate admitted the request but before the handler reads
    the current token: no 404, and never the token that replaced the caller's."""
    async with _ann_with_a_token(tmp_path) as (url, app, session, token):
        store = app[STORE]
        read_current = store.current_admin_token

        async def raced(network_id: str, username: str) -> dict[str, Any] | None:
            await _racing(app, change)
            return await read_current(network_id, username)

        monkeypatch.setattr(store, "current_admin_token", raced)
        got, body, warning = await _answer(session, "GET", f"{url}/api/v1/admin-token", token)
        assert (got, body) == (status, error(status, message))
        assert "adminToken" not in body and (change == "revoke" or WARNING.match(warning))


async def test_built_in_endpoints_decide_on_the_store_as_of_the_request(
    tmp_path: Path,
) -> None:
    """A revoke made on another worker holds at once on the gateway's own endpoints,
    while proxied requests keep the in-memory state until the change feed brings it (no
    store round trip per proxied request)."""
    hears_late = {"store": {"feed_poll_interval": "1h"}}
    async with _ann_with_a_token(tmp_path, hears_late) as (url, app, session, token):
        headers = {"Authorization": f"Bearer {token}"}
        await _racing(app, "revoke")
        async with session.get(f"{url}/api/v3/things", headers=headers) as response:
            assert response.status == 200  # proxied: within the feed's bound
        got = await _answer(session, "GET", f"{url}/api/v3/networks/me", token)
        assert got[:2] == (401, error(401, "Invalid token"))  # reads no credential itself
        async with session.get(f"{url}/api/v3/things", headers=headers) as response:
            assert response.status == 401  # and this worker now knows


@pytest.mark.parametrize("change", ["revoke", "rotate"])
@pytest.mark.parametrize("write", ["admin-token", "server-key"])
async def test_a_write_racing_a_change_to_its_token_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, write: str,
) -> None:
    """The caller's token ends after the gate admitted the request (its body may trickle
    in for long) but before its write: the write's transaction checks the token again,
    changes nothing, and the answer is the refusal the gate gives that token now."""
    async with _ann_with_a_token(tmp_path) as (url, app, session, token):
        store = app[STORE]
        network_id = (await store.list_networks())[0].id
        racing_jti: list[str | None] = []
        raced_once: list[bool] = []
        audit_before = await store.audit_page(network_id, 100, None)
        key_before = await store.server_key_info(network_id)
        path, target = {  # both rules refuse a superseded token
            "admin-token": ("/api/v1/admin-token", "rotate_admin_token"),
            "server-key": ("/api/v3/networks/server-key", "set_server_key_hash"),
        }[write]
        real_write = getattr(store, target)

        async def raced(*args: Any, **kwargs: Any) -> Any:
            if not raced_once:  # the racing change lands just before the write (its own
                raced_once.append(True)  # rotation comes back through here)
                racing_jti.append(await _racing(app, change))
            return await real_write(*args, **kwargs)

        monkeypatch.setattr(store, target, raced)
        status, body, warning = await _answer(session, "POST", f"{url}{path}", token)
        if change == "revoke":
            assert (status, body) == (401, error(401, "Invalid token"))
            assert await store.current_admin_token(network_id, "ann") is None  # none minted
        else:
            assert (status, body) == (403, error(403, "Permission denied"))
            assert WARNING.match(warning)
            current = await store.current_admin_token(network_id, "ann")
            assert current is not None and current["jti"] == racing_jti[0]
        assert await store.server_key_info(network_id) == key_before
        assert await store.audit_page(network_id, 100, None) == audit_before


async def test_a_token_the_store_never_recorded_may_not_write(tmp_path: Path) -> None:
    """Every token the gateway hands out is recorded first; one signed with its key but
    unknown to the store (forged with a leaked key, say) passes the gate as the feed
    knows nothing against it, but its writes check the store: 401, nothing changed, the
    refusal counted as `not_live`."""
    async with _ann_with_a_token(tmp_path) as (url, app, session, _token):
        store = app[STORE]
        network_id = (await store.list_networks())[0].id
        forged, _ = await app[TOKENS].issue_admin(network_id, "ann", "admin", 3600)
        key_before = await store.server_key_info(network_id)
        log = app[ACCESS_LOG]
        log.stream = io.StringIO()
        got = await _answer(session, "GET", f"{url}/api/v3/networks/me", forged)
        assert got[0] == 200  # reads pass: the gate has nothing against it
        got = await _answer(session, "POST", f"{url}/api/v3/networks/server-key", forged)
        assert got[:2] == (401, error(401, "Invalid token"))
        assert await store.server_key_info(network_id) == key_before
        log.flush()
        lines = [json.loads(line) for line in log.stream.getvalue().splitlines()]
        assert [line["refusal"] for line in lines if line["method"] == "POST"] == ["not_live"]

"""Live connections follow the credential that opened them (API.md section 4a): the end
of a superseded admin token's grace closes its WebSockets; a console session revoked
by a super admin closes its WebSockets; one token holds a bounded number of them; and
console-cookie writes must come from the console itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType

from gateway.auth.passwords import hash_password
from gateway.testing.support import REPO, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import Gateway
from tests.proxy.conftest import in_process_gateway

WS = "/api/v3/ws-echo"


@pytest.fixture
async def live_gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    """Real time (the grace ends for real), a one-second grace, two WebSockets a token."""
    async with running_upstream("sg") as upstream:
        config = write_config(tmp_path, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
            "tokens": {"admin_rotation_grace": "1s"},
            "proxy": {"max_websockets_per_token": 2},
        })
        async with in_process_gateway(config) as (url, app), \
                aiohttp.ClientSession() as session:
            yield Gateway(url, app, session, upstream)


async def _closed_with_policy_violation(ws: aiohttp.ClientWebSocketResponse,
                                        timeout: float) -> bool:
    message = await ws.receive(timeout=timeout)
    while message.type is WSMsgType.TEXT:
        message = await ws.receive(timeout=timeout)
    return message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 1008


async def test_the_end_of_a_grace_closes_the_old_tokens_websockets(live_gw: Gateway) -> None:
    gw = live_gw
    network = await gw.network()
    old = await gw.admin_token(network, "ann", "admin")
    headers = {"Authorization": f"Bearer {old}"}
    async with gw.session.ws_connect(f"{gw.url}{WS}", headers=headers) as ws:
        await ws.send_str("hi")
        status, _, _ = await gw.call("POST", "/api/v1/admin-token", old)
        assert status == 200
        assert await _closed_with_policy_violation(ws, timeout=5)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gw.session.ws_connect(f"{gw.url}{WS}", headers=headers)
    assert refused.value.status == 401


async def test_revoking_an_admin_closes_their_console_websockets(live_gw: Gateway) -> None:
    gw = live_gw
    network = await gw.network()
    await gw.store.create_admin(network.id, "mod", "moderator", hash_password("pw", log2_n=10))
    root = await gw.admin_token(network, "root", "super-admin")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as console:
        async with console.post(f"{gw.url}/console/v1/login", headers={
                "x-api-key": network.api_key}, json={"username": "mod", "password": "pw"}) as r:
            assert r.status == 200
        async with console.ws_connect(f"{gw.url}{WS}") as ws:
            await ws.send_str("hi")
            status, _, _ = await gw.call("DELETE", "/api/v1/admin-token", root,
                                         json={"username": "mod"})
            assert status == 200
            assert await _closed_with_policy_violation(ws, timeout=3)


async def test_one_token_holds_a_bounded_number_of_websockets(live_gw: Gateway) -> None:
    gw = live_gw
    network = await gw.network()
    session = await gw.login(network, "eve", "dev-eve")
    headers = {"Authorization": f"Bearer {session['accessToken']}"}
    first = await gw.session.ws_connect(f"{gw.url}{WS}", headers=headers)
    second = await gw.session.ws_connect(f"{gw.url}{WS}", headers=headers)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await gw.session.ws_connect(f"{gw.url}{WS}", headers=headers)
        assert refused.value.status == 429
        other = await gw.login(network, "bob", "dev-bob")  # another token is not counted
        third = await gw.session.ws_connect(
            f"{gw.url}{WS}", headers={"Authorization": f"Bearer {other['accessToken']}"})
        await third.close()
    finally:
        await first.close()
        await second.close()
    # Closed connections free their places.
    again = await gw.session.ws_connect(f"{gw.url}{WS}", headers=headers)
    await again.close()


@pytest.mark.parametrize(("headers", "status"), [
    ({"Origin": "https://evil.example", "Content-Type": "application/json"}, 403),
    ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403),
    ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, 403),
    ({"Content-Type": "text/plain"}, 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
])
async def test_cross_site_console_writes_change_nothing(gw: Gateway, headers: dict[str, str],
                                                        status: int) -> None:
    network = await gw.network()
    await gw.store.create_admin(network.id, "ann", "admin", hash_password("pw", log2_n=10))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as console:
        async with console.post(f"{gw.url}/console/v1/login", headers={
                "x-api-key": network.api_key}, json={"username": "ann", "password": "pw"}) as r:
            assert r.status == 200
        body = b'{"useSecureAuthentication": true}'
        async with console.put(f"{gw.url}/api/v3/networks/me", data=body,
                               headers=headers) as refused:
            assert refused.status == status
            answer = await refused.json()
            assert answer["code"] == (400301 if status == 403 else 400000)
        after = await gw.store.get_network(network.id)
        assert after is not None and not after.use_secure_authentication
        # The console's own write, and the same write with a bearer token, pass.
        async with console.put(f"{gw.url}/api/v3/networks/me", data=body, headers={
                "Content-Type": "application/json", "Origin": gw.url,
                "Sec-Fetch-Site": "same-origin"}) as ok:
            assert ok.status == 200
    token = await gw.admin_token(network, "ann", "admin")
    status_bearer, _, _ = await gw.call("PUT", "/api/v3/networks/me", token, data=body,
                                        headers=headers)
    assert status_bearer == 200

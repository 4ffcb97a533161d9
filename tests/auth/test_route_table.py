"""The request path through a real gateway: one route table (no spelling of a built-in
endpoint is forwarded or served without its rule), one outbound filter (no consumed
credential reaches the upstream), body limits by route kind, live connections ending
with the console session that opened them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from gateway.auth.passwords import hash_password
from gateway.config import load_config
from gateway.policy import Auth, Rule, compile_rules
from gateway.store import Network
from gateway.testing.support import write_config
from tests.auth.conftest import Gateway, error

ADMIN_READS = ("/api/v3/audit-logs", "/api/v3/networks/certificates",
               "/api/v3/networks/server-key", "/api/v3/networks/me", "/api/v1/admin-token")


async def _user_token(gw: Gateway, network: Network, user: str = "eve") -> str:
    session = await gw.login(network, user, f"dev-{user}")
    token: str = session["accessToken"]
    return token


async def _console(gw: Gateway, network: Network, username: str = "ann",
                   role: str = "admin") -> str:
    """Log `username` in to the console; returns the cookie value."""
    await gw.store.create_admin(network.id, username, role, hash_password("pw", log2_n=10))
    status, _, response = await gw.call(
        "POST", "/console/v1/login", headers={"x-api-key": network.api_key},
        json={"username": username, "password": "pw"})
    assert status == 200
    return str(response.cookies["gateway_console"].value)


def _seen_headers(body: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in body["headers"]}


@pytest.mark.parametrize("path", ADMIN_READS)
async def test_head_is_checked_like_get(gw: Gateway, path: str) -> None:
    network = await gw.network()
    token = await _user_token(gw, network)
    status, _, response = await gw.call("HEAD", path, token)
    assert status == 403 and response.headers.get("X-Upstream") is None
    admin = await gw.admin_token(network, "ann", "admin")
    status, _, response = await gw.call("HEAD", "/api/v3/networks/me", admin)
    assert status == 200 and int(response.headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", ["//api/v3/audit-logs", "/api//v3/audit-logs/",
                                  "/api/v3/%61udit-logs", "/%61pi/v3/audit-logs"])
async def test_spellings_of_a_builtin_endpoint_are_served_by_it(gw: Gateway, path: str) -> None:
    network = await gw.network()
    token = await _user_token(gw, network)
    status, body, response = await gw.call("GET", path, token)
    assert (status, body) == (403, error(403, "Permission denied"))
    admin = await gw.admin_token(network, "ann", "admin")
    status, body, response = await gw.call("GET", path, admin)
    assert status == 200 and "auditLogs" in body and "X-Upstream" not in response.headers


async def test_auth_token_and_login_spellings_are_never_forwarded(gw: Gateway) -> None:
    network = await gw.network(secure=True)
    status, body, response = await gw.call(
        "GET", "//api/v3/authentication/token?userId=x", headers={"x-server-key": "nope"})
    assert (status, body["message"]) == (401, "Unauthorized")
    assert "X-Upstream" not in response.headers
    status, body, response = await gw.call(
        "POST", "//console/v1/login", headers={"x-api-key": network.api_key},
        json={"username": "nobody", "password": "x"})
    assert (status, body["message"]) == (401, "Unauthorized")
    assert "X-Upstream" not in response.headers


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PATCH", "/api/v3/networks/me", "GET, HEAD, PUT"),
    ("PUT", "/api/v3/sessions", "GET, HEAD, POST"),
    ("GET", "/console/v1/login", "POST"),
    ("POST", "/healthz", "GET, HEAD"),
])
async def test_builtin_paths_answer_405_for_other_methods(gw: Gateway, method: str, path: str,
                                                         allow: str) -> None:
    network = await gw.network()
    token = await _user_token(gw, network)
    status, body, response = await gw.call(method, path, token)
    assert (status, body["message"]) == (405, "Method Not Allowed")
    assert response.headers["Allow"] == allow
    assert "X-Upstream" not in response.headers


def test_region_and_rules_see_one_host(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"regions": {
        "default": "sg", "eu": {"hosts": ["api.eu.amity.co"], "upstreams": ["http://e"]},
        "sg": {"hosts": ["api.sg.amity.co"], "upstreams": ["http://s"]}}}), environ={})
    rule = Rule(name="eu-only", path="/x", auth=Auth.PUBLIC, hosts=frozenset({"api.eu.amity.co"}))
    policies = compile_rules([rule])
    for host in ("api.eu.amity.co", "API.EU.AMITY.CO.", "api.eu.amity.co.:443",
                 "Api.Eu.Amity.Co:8080"):
        assert config.regions.for_host(host).name == "eu", host
        assert policies.match("GET", host, "/x") is rule, host
    assert config.regions.for_host("api.eu.amity.co..").name == "sg"
    assert policies.match("GET", "api.eu.amity.co..", "/x") is None


async def test_consumed_credentials_never_reach_the_upstream(gw: Gateway) -> None:
    network = await gw.network()
    token = await _user_token(gw, network)
    headers = {
        "Cookie": "theme=dark; gateway_console=stolen; lang=en",
        "x-server-key": "secret", "X_Server_Key": "secret",
        "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE",
        "X-Method-Override": "DELETE", "X_Gateway_User_Id": "root",
        "X-Gateway-Role": "super-admin",
    }
    status, body, _ = await gw.call("GET", "/api/v3/things?a=1", token, headers=headers)
    assert status == 200
    seen = _seen_headers(body)
    assert seen["cookie"] == "theme=dark; lang=en"
    assert "authorization" not in seen and seen["x-gateway-user-id"] == "eve"
    for name in ("x-server-key", "x_server_key", "x-http-method-override", "x-http-method",
                 "x-method-override", "x_gateway_user_id"):
        assert name not in seen, name
    assert seen["x-gateway-role"] == "user"
    assert body["query"] == "a=1"


async def test_proxied_bodies_have_their_own_limit(gw: Gateway) -> None:
    network = await gw.network()
    token = await _user_token(gw, network)
    body = b"x" * (2 * 1024 * 1024)  # over server.max_body_bytes (1 MiB), under the proxy's
    status, echoed, _ = await gw.call("POST", "/api/v3/upload", token, data=body)
    assert status == 200 and echoed["size"] == len(body)
    status, answer, _ = await gw.call(
        "POST", "/api/v3/sessions", headers={"x-api-key": network.api_key,
                                             "Content-Type": "application/json"}, data=body)
    assert (status, answer["message"]) == (413, "request too large")


async def test_a_console_websocket_ends_at_logout(gw: Gateway) -> None:
    network = await gw.network()
    cookie = await _console(gw, network)
    url = f"{gw.url}/api/v3/ws-echo"
    async with aiohttp.ClientSession(cookies={"gateway_console": cookie}) as session:
        async with session.ws_connect(url) as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).type is WSMsgType.TEXT
            await session.post(f"{gw.url}/console/v1/logout")
            message = await ws.receive(timeout=3)
            while message.type is WSMsgType.TEXT:  # echoes still in flight
                message = await ws.receive(timeout=3)
            assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
            assert ws.close_code == 1008

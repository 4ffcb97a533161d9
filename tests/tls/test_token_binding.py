"""Certificate-bound credentials (RFC 8705, `mtls.bind_tokens`) over real TLS handshakes
with client certificates the gateway CA signed from `openssl` CSRs: admin tokens,
console sessions and auth tokens issued over a pinned certificate work with it only,
and deleting the certificate ends them on every instance within the feed bound."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import yaml
from aiohttp import WSMsgType
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.auth.console_session import COOKIE, session_hash
from gateway.auth.passwords import hash_password
from gateway.keys import AUTH_STATE
from gateway.store import Network
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import error
from tests.proxy.conftest import in_process_gateway
from tests.tls.conftest import TlsGateway, openssl_csr, tls_config

INVALID = error(401, "Invalid token")
UNAUTHORIZED = error(401, "Unauthorized")
CERTS = "/api/v3/networks/certificates"
WS = "/api/v3/ws-echo"
Pair = tuple[Path, Path]  # (certificate, key)


def _gateway(url: str, app: Any, session: aiohttp.ClientSession, upstream: str,
             config: Path) -> TlsGateway:
    port = yaml.safe_load(config.read_text())["server"]["https"]["port"]
    return TlsGateway(url, app, session, upstream, https_url=f"https://127.0.0.1:{port}",
                      folder=config.parent)


@pytest.fixture
async def bind_gw(tmp_path: Path) -> AsyncIterator[TlsGateway]:
    """A gateway with `mtls.bind_tokens` on, in real time (the feed and live sockets)."""
    async with running_upstream("sg") as upstream:
        config = tls_config(tmp_path, upstream, mtls={"bind_tokens": True})
        async with in_process_gateway(config) as (url, app), \
                aiohttp.ClientSession() as session:
            yield _gateway(url, app, session, upstream, config)


async def _network(gw: TlsGateway, folder: Path, *, mtls: bool) -> tuple[Network, str, Pair,
                                                                          Pair]:
    """A secure network with two uploaded certificates (mTLS on or off), the unbound
    admin token of its admin `ada`, and the two (certificate, key) pairs."""
    network = await gw.network(secure=True)
    token = await gw.admin_token(network, "ada", "admin")
    pairs = []
    for name in ("first", "second"):
        client = openssl_csr(folder)
        pairs.append((await gw.upload(token, f"{name}-{network.id[:6]}", client, folder),
                      client.key_path))
    if mtls:
        status, body, _ = await gw.call("PUT", "/api/v3/networks/me", token,
                                        json={"mtlsEnabled": True})
        assert status == 200 and body["mtlsEnabled"], body
    return network, token, pairs[0], pairs[1]


def _fingerprint(cert: Path) -> str:
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _x5t(token: str) -> str | None:
    """The token's `cnf.x5t#S256`, None when unbound."""
    cnf = jwt.decode(token, options={"verify_signature": False}).get("cnf")
    return None if cnf is None else str(cnf["x5t#S256"])


def _thumbprint(cert: Path) -> str:
    """RFC 8705: base64url of the DER's SHA-256, without padding."""
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


async def _bound_admin_token(gw: TlsGateway, network: Network, username: str,
                             pair: Pair) -> str:
    """`username`'s admin token generated over a connection presenting `pair`."""
    unbound = await gw.admin_token(network, username, "admin")
    status, body, _ = await gw.tls_call("POST", "/api/v1/admin-token", unbound,
                                        cert=pair[0], key=pair[1])
    assert status == 200, body
    token: str = body["adminToken"]
    return token


async def _console_login(gw: TlsGateway, network: Network, username: str,
                         pair: Pair | None) -> tuple[str, str]:
    """Log `username` (no admin token yet) in to the console over TLS; (cookie, token)."""
    await gw.store.create_admin(network.id, username, "admin", hash_password("pw", log2_n=10))
    cert, key = pair if pair else (None, None)
    status, body, headers = await gw.tls_call(
        "POST", "/console/v1/login", cert=cert, key=key, headers={"x-api-key": network.api_key},
        json={"username": username, "password": "pw"})
    assert status == 200, body
    cookie = SimpleCookie(headers["Set-Cookie"])[COOKIE].value
    return cookie, body["adminToken"]


async def test_a_bound_admin_token_works_with_its_certificate_only(
    bind_gw: TlsGateway, tmp_path: Path
) -> None:
    for mtls in (False, True):
        network, plain, mine, other = await _network(bind_gw, tmp_path / str(mtls), mtls=mtls)
        token = await _bound_admin_token(bind_gw, network, "cy", mine)
        assert _x5t(token) == _thumbprint(mine[0])
        for path in ("/api/v3/networks/me", "/api/v3/anything"):  # built-in and proxied
            status, body, _ = await bind_gw.tls_call("GET", path, token,
                                                     cert=mine[0], key=mine[1])
            assert status == 200, body
            # No certificate (over TLS and plain HTTP), or another of the network's.
            assert (await bind_gw.tls_call("GET", path, token))[:2] == (401, INVALID)
            assert (await bind_gw.call("GET", path, token))[:2] == (401, INVALID)
            assert (await bind_gw.tls_call("GET", path, token, cert=other[0],
                                           key=other[1]))[:2] == (401, INVALID)
            # The unbound token of another admin still works with the other certificate.
            assert (await bind_gw.tls_call("GET", path, plain, cert=other[0],
                                           key=other[1]))[0] == 200


async def test_a_console_session_opened_with_a_certificate_is_bound_to_it(
    bind_gw: TlsGateway, tmp_path: Path
) -> None:
    network, _, mine, other = await _network(bind_gw, tmp_path, mtls=True)
    cookie, token = await _console_login(bind_gw, network, "bea", mine)
    assert _x5t(token) == _thumbprint(mine[0])  # the admin token login generated
    row = await bind_gw.store.console_session(session_hash(cookie))
    assert row is not None and row["cert_sha256"] == _fingerprint(mine[0])
    cookies = {"Cookie": f"{COOKIE}={cookie}"}
    status, body, _ = await bind_gw.tls_call("GET", "/api/v3/networks/me", headers=cookies,
                                             cert=mine[0], key=mine[1])
    assert status == 200, body
    assert (await bind_gw.tls_call("GET", "/api/v3/networks/me",
                                   headers=cookies))[:2] == (401, INVALID)
    assert (await bind_gw.tls_call("GET", "/api/v3/networks/me", headers=cookies,
                                   cert=other[0], key=other[1]))[:2] == (401, INVALID)


async def test_a_bound_auth_token_is_redeemed_with_its_certificate_only(
    bind_gw: TlsGateway, tmp_path: Path
) -> None:
    network, plain, mine, other = await _network(bind_gw, tmp_path, mtls=True)
    _, body, _ = await bind_gw.tls_call("POST", "/api/v3/networks/server-key", plain,
                                        cert=mine[0], key=mine[1])
    status, auth_token, _ = await bind_gw.tls_call(
        "GET", "/api/v3/authentication/token?userId=alice",
        headers={"x-server-key": body["serverKey"]}, cert=mine[0], key=mine[1])
    assert status == 200 and isinstance(auth_token, str)
    login: dict[str, Any] = {
        "headers": {"x-api-key": network.api_key},
        "json": {"userId": "alice", "deviceId": "d1", "authToken": auth_token},
    }
    assert (await bind_gw.tls_call("POST", "/api/v3/sessions", **login))[:2] == (401, INVALID)
    assert (await bind_gw.tls_call("POST", "/api/v3/sessions", cert=other[0], key=other[1],
                                   **login))[:2] == (401, INVALID)
    status, session, _ = await bind_gw.tls_call("POST", "/api/v3/sessions", cert=mine[0],
                                                key=mine[1], **login)
    assert status == 200, session
    # The access token it bought is the end user's, never bound: no certificate needed.
    assert _x5t(session["accessToken"]) is None
    assert (await bind_gw.tls_call("GET", "/api/v3/posts", session["accessToken"]))[0] == 200


async def test_with_binding_off_nothing_is_bound(tls_gw: TlsGateway, tmp_path: Path) -> None:
    network, _, mine, _ = await _network(tls_gw, tmp_path, mtls=False)
    token = await _bound_admin_token(tls_gw, network, "cy", mine)
    cookie, login_token = await _console_login(tls_gw, network, "bea", mine)
    assert _x5t(token) is None and _x5t(login_token) is None
    assert (await tls_gw.call("GET", "/api/v3/networks/me", token))[0] == 200
    status, body, _ = await tls_gw.call("GET", "/api/v3/networks/me",
                                        headers={"Cookie": f"{COOKIE}={cookie}"})
    assert status == 200, body


async def _closed_within(ws: aiohttp.ClientWebSocketResponse, deadline: float) -> bool:
    """Whether the gateway closed `ws` with 1008 (policy violation) before `deadline`."""
    while True:
        try:
            message = await ws.receive(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        if message.type is not WSMsgType.TEXT:
            return message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 1008


async def test_deleting_the_certificate_ends_its_credentials_on_another_instance(
    bind_gw: TlsGateway, tmp_path: Path
) -> None:
    network, plain, mine, other = await _network(bind_gw, tmp_path, mtls=True)
    token = await _bound_admin_token(bind_gw, network, "cy", mine)
    cookie, _ = await _console_login(bind_gw, network, "bea", mine)
    config = tls_config(tmp_path, bind_gw.upstream, name="instance-b.yaml",
                        mtls={"bind_tokens": True})
    async with in_process_gateway(config) as (url, app), aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=bind_gw.client_context(*mine))) as holder:
        second = _gateway(url, app, bind_gw.session, bind_gw.upstream, config)
        sockets = [
            await holder.ws_connect(f"{second.https_url}{WS}",
                                    headers={"Authorization": f"Bearer {token}"}),
            await holder.ws_connect(f"{second.https_url}{WS}",
                                    headers={"Cookie": f"{COOKIE}={cookie}"}),
        ]
        try:
            for ws in sockets:
                assert (await ws.receive(timeout=5)).data == "hello from sg"
            _, listed, _ = await bind_gw.tls_call("GET", CERTS, plain, cert=other[0],
                                                  key=other[1])
            [certificate_id] = [c["certificateId"] for c in listed["certificates"]
                                if c["fingerprintSha256"] == _fingerprint(mine[0])]
            status, _, _ = await bind_gw.tls_call("DELETE", f"{CERTS}/{certificate_id}", plain,
                                                  cert=other[0], key=other[1])
            assert status == 200
            deadline = time.monotonic() + 1.0  # SQLite feed: 50 ms polls (README figures)
            for ws in sockets:
                assert await _closed_within(ws, deadline), "a bound WebSocket stayed open"
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
        state = app[AUTH_STATE]
        assert session_hash(cookie) in state.ended_console_sessions
        assert state.is_revoked(jwt.decode(token, options={"verify_signature": False})["jti"])
        # Refused by the other instance: revoked, ended (with the certificate or without).
        assert (await second.tls_call("GET", "/api/v3/networks/me", token))[:2] == (
            401, INVALID)
        assert (await second.tls_call("GET", "/api/v3/networks/me", headers={
            "Cookie": f"{COOKIE}={cookie}"}))[:2] == (401, UNAUTHORIZED)
        # The unbound admin token and the other certificate keep working.
        assert (await second.tls_call("GET", CERTS, plain, cert=other[0],
                                      key=other[1]))[0] == 200
    [entry] = await bind_gw.store.audit_page(network.id, 1, None, action="certificate.delete")
    assert entry.actor == "ada"

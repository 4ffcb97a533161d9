"""mTLS enforcement over real TLS handshakes (API.md sections 1 and 3)."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yaml
from cryptography import x509

from gateway.store import Network
from gateway.testing.support import Clock
from gateway.tls import fingerprint_sha256
from tests.proxy.conftest import in_process_gateway
from tests.tls.conftest import TlsGateway, openssl_csr, self_signed, tls_config

CERTS = "/api/v3/networks/certificates"
REQUIRED = {"status": "error", "code": 400100, "message": "client certificate required"}
NOT_ALLOWED = {"status": "error", "code": 400300, "message": "client certificate not allowed"}


async def _mtls_network(
    gw: TlsGateway, folder: Path, certificates: int = 1
) -> tuple[Network, str, list[tuple[Path, Path]]]:
    """A secure network with uploaded certificates and mTLS on: the network, an admin
    token and (certificate path, key path) per certificate."""
    network = await gw.network(secure=True)
    token = await gw.admin_token(network, "ada", "admin")
    pairs = []
    for index in range(certificates):
        client = openssl_csr(folder)
        cert = await gw.upload(token, f"cert-{network.id[:6]}-{index}", client, folder)
        pairs.append((cert, client.key_path))
    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", token,
                                    json={"mtlsEnabled": True})
    assert status == 200 and body["mtlsEnabled"] and "warnings" not in body, body
    return network, token, pairs


def _upstream_headers(body: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in body["headers"]}


async def test_admin_calls_need_the_uploaded_certificate(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    _, token, [(cert, key)] = await _mtls_network(tls_gw, tmp_path)
    # No certificate: over TLS and over plain HTTP alike.
    assert (await tls_gw.tls_call("GET", "/api/v3/networks/me", token))[:2] == (401, REQUIRED)
    assert (await tls_gw.call("GET", "/api/v3/networks/me", token))[:2] == (401, REQUIRED)
    # The uploaded certificate: built-in endpoints and proxied calls go through.
    status, body, _ = await tls_gw.tls_call("GET", "/api/v3/networks/me", token,
                                            cert=cert, key=key)
    assert status == 200 and body["mtlsEnabled"] is True
    status, body, _ = await tls_gw.tls_call("GET", "/api/v3/anything", token,
                                            cert=cert, key=key)
    assert status == 200, body
    fingerprint = fingerprint_sha256(x509.load_pem_x509_certificate(cert.read_bytes()))
    assert _upstream_headers(body)["x-gateway-client-cert-sha256"] == fingerprint


async def test_other_certificates_are_refused(tls_gw: TlsGateway, tmp_path: Path) -> None:
    _, token, _ = await _mtls_network(tls_gw, tmp_path)
    # Signed by the gateway CA, but uploaded for another network: 403.
    _, _, [(other_cert, other_key)] = await _mtls_network(tls_gw, tmp_path / "other")
    status, body, _ = await tls_gw.tls_call("GET", "/api/v3/networks/me", token,
                                            cert=other_cert, key=other_key)
    assert (status, body) == (403, NOT_ALLOWED)
    # Not signed by the gateway CA: the handshake itself fails.
    stranger_cert, stranger_key = self_signed(tmp_path)
    with pytest.raises(aiohttp.ClientError):
        await tls_gw.tls_call("GET", "/api/v3/networks/me", token,
                              cert=stranger_cert, key=stranger_key)


async def test_a_deleted_certificate_is_refused_at_once(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    _, token, [(cert, key), spare] = await _mtls_network(tls_gw, tmp_path, certificates=2)
    status, listed, _ = await tls_gw.tls_call("GET", CERTS, token, cert=cert, key=key)
    assert status == 200
    fingerprint = fingerprint_sha256(x509.load_pem_x509_certificate(cert.read_bytes()))
    [certificate_id] = [c["certificateId"] for c in listed["certificates"]
                        if c["fingerprintSha256"] == fingerprint]
    # Deleted with the other certificate, which keeps working.
    status, _, _ = await tls_gw.tls_call("DELETE", f"{CERTS}/{certificate_id}", token,
                                         cert=spare[0], key=spare[1])
    assert status == 200
    assert (await tls_gw.tls_call("GET", CERTS, token, cert=cert, key=key))[:2] == (
        403, NOT_ALLOWED)
    assert (await tls_gw.tls_call("GET", CERTS, token, cert=spare[0], key=spare[1]))[0] == 200


async def test_an_expired_certificate_is_refused_even_if_listed(
    tls_gw: TlsGateway, tmp_path: Path, clock: Clock
) -> None:
    network, token, [(cert, key)] = await _mtls_network(tls_gw, tmp_path)
    assert (await tls_gw.tls_call("GET", CERTS, token, cert=cert, key=key))[0] == 200
    clock.advance(366 * 86400)  # past notAfter (365 days); the listing still has it
    token = await tls_gw.admin_token(network, "ada", "admin")  # a token valid then
    assert len(await tls_gw.store.list_certificates(network.id)) == 1
    assert (await tls_gw.tls_call("GET", CERTS, token, cert=cert, key=key))[:2] == (
        403, NOT_ALLOWED)


async def test_auth_token_endpoints_need_the_certificate(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    _, token, [(cert, key)] = await _mtls_network(tls_gw, tmp_path)
    status, body, _ = await tls_gw.tls_call("POST", "/api/v3/networks/server-key", token,
                                            cert=cert, key=key)
    assert status == 200, body
    server_key = {"x-server-key": body["serverKey"]}
    path = "/api/v3/authentication/token?userId=alice"
    assert (await tls_gw.tls_call("GET", path, headers=server_key))[:2] == (401, REQUIRED)
    status, body, _ = await tls_gw.tls_call("GET", path, headers=server_key, cert=cert, key=key)
    assert status == 200 and isinstance(body, str) and body
    status, body, _ = await tls_gw.tls_call("POST", "/api/v4/authentication/token",
                                            headers=server_key, json={"userId": "bob"})
    assert (status, body) == (401, REQUIRED)
    # A wrong server key is still "Unauthorized", certificate or not.
    status, body, _ = await tls_gw.tls_call("GET", path, headers={"x-server-key": "nope"})
    assert status == 401 and body["message"] == "Unauthorized"


async def test_end_users_and_networks_without_mtls_need_no_certificate(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    network, token, [(cert, key)] = await _mtls_network(tls_gw, tmp_path)
    # End users of an mTLS network log in and call through without a certificate.
    _, key_body, _ = await tls_gw.tls_call("POST", "/api/v3/networks/server-key", token,
                                           cert=cert, key=key)
    _, auth_token, _ = await tls_gw.tls_call(
        "GET", "/api/v3/authentication/token?userId=alice",
        headers={"x-server-key": key_body["serverKey"]}, cert=cert, key=key)
    session = await tls_gw.login(network, "alice", authToken=auth_token)
    status, body, _ = await tls_gw.tls_call("GET", "/api/v3/posts", session["accessToken"])
    assert status == 200 and "x-gateway-client-cert-sha256" not in _upstream_headers(body)
    # A network with mTLS off: admin calls need no certificate.
    plain = await tls_gw.network(secure=True)
    plain_token = await tls_gw.admin_token(plain, "bo", "admin")
    assert (await tls_gw.tls_call("GET", "/api/v3/networks/me", plain_token))[0] == 200


async def test_turning_mtls_off_lifts_the_requirement(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    _, token, [(cert, key)] = await _mtls_network(tls_gw, tmp_path)
    status, body, _ = await tls_gw.tls_call("PUT", "/api/v3/networks/me", token,
                                            json={"mtlsEnabled": False}, cert=cert, key=key)
    assert status == 200 and body["mtlsEnabled"] is False
    assert (await tls_gw.tls_call("GET", "/api/v3/networks/me", token))[0] == 200


async def test_mtls_toggle_rules(tls_gw: TlsGateway, tmp_path: Path) -> None:
    network = await tls_gw.network(secure=False)
    token = await tls_gw.admin_token(network, "ada", "admin")
    status, body, _ = await tls_gw.call("PUT", "/api/v3/networks/me", token,
                                        json={"mtlsEnabled": True})
    assert status == 403 and body["code"] == 400300 and "secure mode" in body["message"]
    status, body, _ = await tls_gw.call("PUT", "/api/v3/networks/me", token,
                                        json={"useSecureAuthentication": True,
                                              "mtlsEnabled": True})
    assert status == 200 and body["warnings"] and "certificate" in body["warnings"][0]
    status, body, _ = await tls_gw.call("PUT", "/api/v3/networks/me", token,
                                        json={"useSecureAuthentication": False})
    # mTLS is on now, and this request has no certificate: the pin answers first.
    assert (status, body) == (401, REQUIRED)

    # With a certificate: secure mode cannot go while mTLS is on; both at once can.
    pinned, token, [(cert, key)] = await _mtls_network(tls_gw, tmp_path)
    status, body, _ = await tls_gw.tls_call("PUT", "/api/v3/networks/me", token, cert=cert,
                                            key=key, json={"useSecureAuthentication": False})
    assert status == 409 and body["code"] == 400900 and "mTLS" in body["message"]
    stored = await tls_gw.store.get_network(pinned.id)
    assert stored is not None and stored.use_secure_authentication and stored.mtls_enabled
    status, body, _ = await tls_gw.tls_call("PUT", "/api/v3/networks/me", token, cert=cert,
                                            key=key, json={"useSecureAuthentication": False,
                                                           "mtlsEnabled": False})
    assert status == 200 and not body["mtlsEnabled"] and not body["useSecureAuthentication"]


# -- behind a TLS-terminating load balancer ----------------------------------------------

HEADER = "X-Client-Cert"


async def _lb_gateway(tmp_path: Path, upstream: str, trusted: list[str]) -> Path:
    """A second gateway on the same store, behind a load balancer at `trusted`."""
    return tls_config(tmp_path, upstream, name="behind-lb.yaml",
                      server={"trusted_proxies": trusted},
                      mtls={"client_cert_header": HEADER})


@pytest.mark.parametrize("spelling", ["escaped-pem", "pem", "base64-der"])
async def test_a_trusted_proxy_passes_the_certificate_in_a_header(
    tls_gw: TlsGateway, tmp_path: Path, spelling: str
) -> None:
    _, token, [(cert, _)] = await _mtls_network(tls_gw, tmp_path)
    pem = cert.read_text()
    value = {
        "escaped-pem": quote(pem, safe=""),
        "pem": pem.replace("\n", " ").strip(),
        "base64-der": "".join(pem.strip().splitlines()[1:-1]),
    }[spelling]
    config = await _lb_gateway(tmp_path, tls_gw.upstream, ["127.0.0.1/32"])
    async with in_process_gateway(config) as (url, _), aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v3/x", headers={
            "Authorization": f"Bearer {token}", HEADER: value}) as response:
            body = await response.json()
            assert response.status == 200, body
        headers = _upstream_headers(body)
        assert HEADER.lower() not in headers  # the certificate itself stops here
        assert len(headers["x-gateway-client-cert-sha256"]) == 64
        async with session.get(f"{url}/api/v3/x", headers={
            "Authorization": f"Bearer {token}", HEADER: "garbage"}) as response:
            assert (response.status, await response.json()) == (401, REQUIRED)


async def test_a_spoofed_certificate_header_from_an_untrusted_peer_is_ignored(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    _, token, [(cert, _)] = await _mtls_network(tls_gw, tmp_path)
    config = await _lb_gateway(tmp_path, tls_gw.upstream, ["10.0.0.0/8"])
    spoofed = {HEADER: quote(cert.read_text(), safe="")}
    # An admin of a network without mTLS: the call goes through, without the header.
    plain = await tls_gw.admin_token(await tls_gw.network(secure=True), "bo", "admin")
    async with in_process_gateway(config) as (url, _), aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v3/x", headers={
            "Authorization": f"Bearer {token}", **spoofed}) as response:
            assert (response.status, await response.json()) == (401, REQUIRED)
        async with session.get(f"{url}/api/v3/x", headers={
            "Authorization": f"Bearer {plain}", **spoofed}) as response:
            body = await response.json()
            assert response.status == 200, body
        headers = _upstream_headers(body)
        assert HEADER.lower() not in headers
        assert "x-gateway-client-cert-sha256" not in headers


async def test_the_listener_accepts_clients_without_certificates(tls_gw: TlsGateway) -> None:
    context = ssl.create_default_context(cafile=str(tls_gw.ca_path))
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(
        f"{tls_gw.https_url}/healthz"
    ) as response:
        assert response.status == 200


async def test_a_deletion_reaches_another_instance_within_the_feed_bound(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    _, token, [(cert, key), spare] = await _mtls_network(tls_gw, tmp_path, certificates=2)
    other_config = tls_config(tmp_path, tls_gw.upstream, name="instance-b.yaml")
    https_port = yaml.safe_load(other_config.read_text())["server"]["https"]["port"]
    other = TlsGateway(tls_gw.url, tls_gw.app, tls_gw.session, tls_gw.upstream,
                       https_url=f"https://127.0.0.1:{https_port}", folder=tmp_path)
    async with in_process_gateway(other_config):
        assert (await other.tls_call("GET", CERTS, token, cert=cert, key=key))[0] == 200
        fingerprint = fingerprint_sha256(x509.load_pem_x509_certificate(cert.read_bytes()))
        _, listed, _ = await tls_gw.tls_call("GET", CERTS, token, cert=cert, key=key)
        [certificate_id] = [c["certificateId"] for c in listed["certificates"]
                            if c["fingerprintSha256"] == fingerprint]
        status, _, _ = await tls_gw.tls_call("DELETE", f"{CERTS}/{certificate_id}", token,
                                             cert=spare[0], key=spare[1])
        assert status == 200
        deadline = time.monotonic() + 1.0  # SQLite feed: 50 ms polls (README figures)
        while (await other.tls_call("GET", CERTS, token, cert=cert, key=key))[0] == 200:
            assert time.monotonic() < deadline, "the other instance still accepts it"
            await asyncio.sleep(0.01)
        assert (await other.tls_call("GET", CERTS, token, cert=cert, key=key))[:2] == (
            403, NOT_ALLOWED)

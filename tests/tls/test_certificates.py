"""Certificates from CSRs (API.md section 3): validation, limits, signing, listing, deletion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.auth.conftest import error
from tests.tls.conftest import TlsGateway, openssl_csr, openssl_verify, tampered

CERTS = "/api/v3/networks/certificates"


async def _secure_admin(gw: TlsGateway, username: str = "ada", role: str = "admin") -> str:
    network = await gw.network(secure=True)
    return await gw.admin_token(network, username, role)


async def test_the_ca_certificate_is_public(tls_gw: TlsGateway) -> None:
    status, body, response = await tls_gw.call("GET", f"{CERTS}/ca")
    assert status == 200
    assert response.content_type == "application/x-pem-file"
    assert body == tls_gw.ca_path.read_text()


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
async def test_an_openssl_csr_is_signed_for_client_auth(
    tls_gw: TlsGateway, tmp_path: Path, kind: str
) -> None:
    token = await _secure_admin(tls_gw)
    client = openssl_csr(tmp_path, kind)
    status, body, _ = await tls_gw.call("POST", CERTS, token,
                                        json={"name": "backend", "csr": client.csr_pem})
    assert status == 201, body
    assert set(body) == {"certificateId", "name", "certificate", "fingerprintSha256",
                         "notBefore", "notAfter", "createdAt"}
    assert body["name"] == "backend"
    pem = tmp_path / "issued.pem"
    pem.write_text(body["certificate"])
    verified = openssl_verify(tls_gw.ca_path, pem)
    assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified
    certificate = x509.load_pem_x509_certificate(body["certificate"].encode())
    der = certificate.public_bytes(Encoding.DER)
    assert body["fingerprintSha256"] == hashlib.sha256(der).hexdigest()
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # mtls.certificate_validity defaults to 365 days.
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 364 <= lifetime.days <= 366
    assert body["notAfter"] == certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_list_and_delete(tls_gw: TlsGateway, tmp_path: Path) -> None:
    token = await _secure_admin(tls_gw)
    status, body, _ = await tls_gw.call("GET", CERTS, token)
    assert (status, body) == (200, {"certificates": []})
    first = openssl_csr(tmp_path)
    _, created, _ = await tls_gw.call("POST", CERTS, token,
                                      json={"name": "one", "csr": first.csr_pem})
    status, body, _ = await tls_gw.call("GET", CERTS, token)
    assert status == 200 and body == {"certificates": [created]}
    status, body, _ = await tls_gw.call("DELETE", f"{CERTS}/{created['certificateId']}", token)
    assert (status, body) == (200, {"success": True})
    status, body, _ = await tls_gw.call("DELETE", f"{CERTS}/{created['certificateId']}", token)
    assert status == 404 and body["code"] == 400400
    assert (await tls_gw.call("GET", CERTS, token))[1] == {"certificates": []}


def _bad_bodies(csr: str, tmp_path: Path) -> dict[str, tuple[object, str]]:
    return {
        "name-31": ({"name": "n" * 31, "csr": csr}, "name must be 1-30 characters"),
        "name-empty": ({"name": "", "csr": csr}, "name must be 1-30 characters"),
        "name-blank": ({"name": "   ", "csr": csr}, "name must not be blank"),
        "name-missing": ({"csr": csr}, "name is required"),
        "name-number": ({"name": 7, "csr": csr}, "name must be a string"),
        "csr-missing": ({"name": "x"}, "csr is required"),
        "csr-empty": ({"name": "x", "csr": ""}, "csr must not be empty"),
        "csr-number": ({"name": "x", "csr": 12}, "csr must be a string"),
        "csr-garbage": ({"name": "x", "csr": "hello"}, "csr: not a PEM certificate signing"),
        "csr-garbage-pem": (
            {"name": "x", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                 "-----END CERTIFICATE REQUEST-----\n"},
            "csr: not a PEM certificate signing request",
        ),
        "csr-tampered": ({"name": "x", "csr": tampered(csr)}, "csr: signature does not verify"),
        "csr-rsa-1024": (
            {"name": "x", "csr": openssl_csr(tmp_path, "rsa-1024").csr_pem},
            "csr: RSA key of 1024 bits, expected at least 2048",
        ),
        "csr-p521": (
            {"name": "x", "csr": openssl_csr(tmp_path, "ec-p521").csr_pem},
            "csr: EC key on curve secp521r1, expected P-256 or P-384",
        ),
        "not-an-object": (["name", "csr"], "body: expected a JSON object"),
    }


async def test_bad_names_and_csrs_are_refused_and_change_nothing(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    token = await _secure_admin(tls_gw)
    csr = openssl_csr(tmp_path).csr_pem
    for case, (body, message) in _bad_bodies(csr, tmp_path).items():
        status, answer, _ = await tls_gw.call("POST", CERTS, token, json=body)
        assert status == 400, (case, answer)
        assert answer["code"] == 400000 and answer["message"].startswith(message), (case, answer)
    assert (await tls_gw.call("GET", CERTS, token))[1] == {"certificates": []}
    audit = await tls_gw.call("GET", "/api/v3/audit-logs", token)
    assert not [e for e in audit[1]["auditLogs"] if e["action"].startswith("certificate.")]


async def test_secure_mode_off_is_403(tls_gw: TlsGateway, tmp_path: Path) -> None:
    network = await tls_gw.network(secure=False)
    token = await tls_gw.admin_token(network, "ada", "admin")
    status, body, _ = await tls_gw.call("POST", CERTS, token,
                                        json={"name": "x", "csr": openssl_csr(tmp_path).csr_pem})
    assert status == 403 and body["code"] == 400300 and "secure mode" in body["message"]


async def test_a_third_certificate_and_a_duplicate_name_are_409(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    token = await _secure_admin(tls_gw)
    await tls_gw.upload(token, "one", openssl_csr(tmp_path), tmp_path)
    status, body, _ = await tls_gw.call("POST", CERTS, token,
                                        json={"name": "one", "csr": openssl_csr(tmp_path).csr_pem})
    assert status == 409 and body["code"] == 400900 and "'one'" in body["message"]
    await tls_gw.upload(token, "two", openssl_csr(tmp_path), tmp_path)
    status, body, _ = await tls_gw.call("POST", CERTS, token,
                                        json={"name": "three",
                                              "csr": openssl_csr(tmp_path).csr_pem})
    assert status == 409 and body["code"] == 400900 and "2 certificates" in body["message"]
    assert len((await tls_gw.call("GET", CERTS, token))[1]["certificates"]) == 2


async def test_concurrent_uploads_cannot_pass_the_limit(
    tls_gw: TlsGateway, tmp_path: Path
) -> None:
    import asyncio

    token = await _secure_admin(tls_gw)
    csrs = [openssl_csr(tmp_path).csr_pem for _ in range(5)]
    answers = await asyncio.gather(*(
        tls_gw.call("POST", CERTS, token, json={"name": f"c{i}", "csr": csr})
        for i, csr in enumerate(csrs)
    ))
    assert sorted(status for status, _, _ in answers) == [201, 201, 409, 409, 409]


async def test_roles_and_networks(tls_gw: TlsGateway, tmp_path: Path) -> None:
    network = await tls_gw.network(secure=True)
    admin = await tls_gw.admin_token(network, "ada", "admin")
    moderator = await tls_gw.admin_token(network, "mo", "moderator")
    created = await tls_gw.call("POST", CERTS, admin,
                                json={"name": "x", "csr": openssl_csr(tmp_path).csr_pem})
    status, body, _ = await tls_gw.call("POST", CERTS, moderator,
                                        json={"name": "y", "csr": openssl_csr(tmp_path).csr_pem})
    assert (status, body) == (403, error(403, "Permission denied"))
    assert (await tls_gw.call("GET", CERTS))[0] == 401
    # Another network's admin neither sees nor deletes this network's certificate.
    other = await tls_gw.admin_token(await tls_gw.network(secure=True), "eve", "super-admin")
    assert (await tls_gw.call("GET", CERTS, other))[1] == {"certificates": []}
    status, _, _ = await tls_gw.call("DELETE", f"{CERTS}/{created[1]['certificateId']}", other)
    assert status == 404
    assert len((await tls_gw.call("GET", CERTS, admin))[1]["certificates"]) == 1


async def test_uploads_and_deletions_are_audited(tls_gw: TlsGateway, tmp_path: Path) -> None:
    token = await _secure_admin(tls_gw)
    _, created, _ = await tls_gw.call("POST", CERTS, token,
                                      json={"name": "audited",
                                            "csr": openssl_csr(tmp_path).csr_pem})
    await tls_gw.call("DELETE", f"{CERTS}/{created['certificateId']}", token)
    _, body, _ = await tls_gw.call("GET", "/api/v3/audit-logs", token)
    actions = [(e["action"], e["target"]) for e in body["auditLogs"]]
    expected = f"audited ({created['fingerprintSha256']})"
    assert actions[:2] == [("certificate.delete", expected), ("certificate.create", expected)]
    assert "BEGIN CERTIFICATE" not in str(body)

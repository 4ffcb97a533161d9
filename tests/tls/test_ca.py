"""The internal CA and the listener's SSL context, checked with real keys, real files,
the `openssl` command line and real TLS handshakes over loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import shutil
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.tls import (
    CaError,
    CertificateAuthority,
    CsrError,
    TlsConfigError,
    ensure_ca,
    ensure_server_certificate,
    fingerprint_sha256,
    server_ssl_context,
)

NOW = datetime(2026, 11, 23, 21, 0, 0, tzinfo=UTC)
YEAR = timedelta(days=365)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")

KeyFactory = Callable[[], CertificateIssuerPrivateKeyTypes]
KEYS: dict[str, KeyFactory] = {
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa-2048": lambda: rsa.generate_private_key(65537, 2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


# --- helpers ---------------------------------------------------------------------------


def _openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )


def _openssl_has_curve(name: str) -> bool:
    listed = subprocess.run(
        ["openssl", "ecparam", "-list_curves"], capture_output=True, text=True, check=False
    )
    return f" {name}" in listed.stdout or f"{name}:" in listed.stdout


def _csr(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str = "client",
    extensions: list[x509.ExtensionType] | None = None,
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    eddsa = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    csr = builder.sign(key, None if eddsa else hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _pem(der: bytes, label: str) -> bytes:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _ca_paths(folder: Path) -> tuple[Path, Path]:
    return folder / "certs" / "ca.pem", folder / "certs" / "ca.key"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return ensure_ca(*_ca_paths(tmp_path))


@pytest.fixture
def ca_pem(tmp_path: Path, ca: CertificateAuthority) -> Path:
    return _ca_paths(tmp_path)[0]


# --- the CA files ----------------------------------------------------------------------


def test_ensure_ca_creates_an_ec_p256_ca_with_private_key_file(tmp_path: Path) -> None:
    cert_path, key_path = _ca_paths(tmp_path)

    ca = ensure_ca(cert_path, key_path, now=NOW)

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert cert_path.read_text() == ca.certificate_pem
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=gateway internal CA"
    assert cert.issuer == cert.subject
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=1)
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(public_key)
    cert.verify_directly_issued_by(cert)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key() == public_key


def test_ensure_ca_is_idempotent_and_never_rewrites(tmp_path: Path) -> None:
    cert_path, key_path = _ca_paths(tmp_path)
    first = ensure_ca(cert_path, key_path)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cert_path, key_path)}

    second = ensure_ca(cert_path, key_path)

    assert second.fingerprint_sha256 == first.fingerprint_sha256
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cert_path, key_path)} == before
    assert sorted(p.name for p in cert_path.parent.iterdir()) == ["ca.key", "ca.pem"]
    # The loaded key is the one that signed: what it issues chains to the first CA.
    issued = second.sign_csr(_csr(ec.generate_private_key(ec.SECP256R1())), YEAR)
    issued.verify_directly_issued_by(first.certificate)


@pytest.mark.parametrize("keep", ["cert", "key"])
def test_ensure_ca_refuses_a_half_present_pair(tmp_path: Path, keep: str) -> None:
    cert_path, key_path = _ca_paths(tmp_path)
    ensure_ca(cert_path, key_path)
    kept, removed = (cert_path, key_path) if keep == "cert" else (key_path, cert_path)
    removed.unlink()
    kept_bytes = kept.read_bytes()

    with pytest.raises(CaError, match=re.escape(f"{kept} exists but {removed} does not")):
        ensure_ca(cert_path, key_path)

    assert not removed.exists()
    assert kept.read_bytes() == kept_bytes


def test_ensure_ca_refuses_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    cert_path, key_path = _ca_paths(tmp_path)
    ensure_ca(cert_path, key_path)
    key_path.write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))

    with pytest.raises(CaError, match="does not match"):
        ensure_ca(cert_path, key_path)


def test_ensure_ca_refuses_unreadable_files_and_non_ca_certificates(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert_path, key_path = tmp_path / "x.pem", tmp_path / "x.key"
    cert_path.write_text("not a certificate")
    key_path.write_text("not a key")
    with pytest.raises(CaError, match="not a PEM certificate"):
        ensure_ca(cert_path, key_path)

    # A leaf certificate with its own key is a matching pair, but not a CA.
    leaf_pem, leaf_key = ca.issue_server_certificate(["localhost"], YEAR)
    cert_path.write_bytes(leaf_pem)
    key_path.write_bytes(leaf_key)
    with pytest.raises(CaError, match="not a CA"):
        ensure_ca(cert_path, key_path)


# --- the server certificate ------------------------------------------------------------


def test_ensure_server_certificate_writes_once(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"

    assert ensure_server_certificate(ca, cert_path, key_path, now=NOW) is True
    written = cert_path.read_bytes(), key_path.read_bytes()
    assert ensure_server_certificate(ca, cert_path, key_path) is False
    assert (cert_path.read_bytes(), key_path.read_bytes()) == written

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(written[0])
    cert.verify_directly_issued_by(ca.certificate)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + YEAR
    key = serialization.load_pem_private_key(written[1], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert key.public_key() == cert.public_key()


def test_ensure_server_certificate_refuses_a_half_present_pair(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    (tmp_path / "server.pem").write_text("kept")
    with pytest.raises(CaError, match=r"server\.key does not"):
        ensure_server_certificate(ca, tmp_path / "server.pem", tmp_path / "server.key")
    assert (tmp_path / "server.pem").read_text() == "kept"


@needs_openssl
def test_openssl_accepts_the_server_certificate(
    tmp_path: Path, ca: CertificateAuthority, ca_pem: Path
) -> None:
    cert_pem, _ = ca.issue_server_certificate(["gateway.test", "10.1.2.3"], YEAR)
    (tmp_path / "server.pem").write_bytes(cert_pem)

    for check in (["-verify_hostname", "gateway.test"], ["-verify_ip", "10.1.2.3"]):
        result = _openssl(
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            *check,
            "-CAfile",
            ca_pem,
            "server.pem",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "server.pem: OK"


@needs_openssl
def test_fingerprint_matches_openssl(
    tmp_path: Path, ca: CertificateAuthority, ca_pem: Path
) -> None:
    result = _openssl("x509", "-in", ca_pem, "-noout", "-fingerprint", "-sha256", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = result.stdout.strip().split("=", 1)[1].replace(":", "").lower()

    assert ca.fingerprint_sha256 == expected
    assert fingerprint_sha256(ca.certificate) == expected
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    assert fingerprint_sha256(der) == expected


# --- signing CSRs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "key_encipherment"),
    [
        pytest.param(KEYS["ec-p256"], False, id="ec-p256"),
        pytest.param(KEYS["ec-p384"], False, id="ec-p384"),
        pytest.param(KEYS["rsa-2048"], True, id="rsa-2048"),
        pytest.param(KEYS["ed25519"], False, id="ed25519"),
    ],
)
def test_sign_csr_issues_a_client_certificate(
    ca: CertificateAuthority, make_key: KeyFactory, key_encipherment: bool
) -> None:
    key = make_key()
    cert = ca.sign_csr(_csr(key, "device-42"), YEAR, now=NOW)

    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.rfc4514_string() == "CN=device-42"
    assert cert.issuer == ca.certificate.subject
    assert cert.public_key() == key.public_key()
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=1)
    assert cert.not_valid_after_utc == NOW + YEAR
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment is key_encipherment
    assert not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_sign_csr_uses_random_serials_and_accepts_text(ca: CertificateAuthority) -> None:
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    serials = {ca.sign_csr(csr, YEAR).serial_number, ca.sign_csr(csr.decode(), YEAR).serial_number}
    assert len(serials) == 2


@needs_openssl
def test_sign_csr_names_an_empty_subject(
    tmp_path: Path, ca: CertificateAuthority, ca_pem: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    csr_pem = csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    cert = ca.sign_csr(csr_pem, YEAR)

    assert cert.subject.rfc4514_string() == "CN=gateway client"
    (tmp_path / "cert.pem").write_bytes(_cert_pem(cert))
    result = _openssl("verify", "-x509_strict", "-CAfile", ca_pem, "cert.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_sign_csr_ignores_requested_extensions(ca: CertificateAuthority) -> None:
    # A CSR may ask for anything; the CA must not make it a CA or add names.
    csr = _csr(
        ec.generate_private_key(ec.SECP256R1()),
        extensions=[
            x509.BasicConstraints(ca=True, path_length=None),
            x509.SubjectAlternativeName([x509.DNSName("bank.example")]),
        ],
    )
    cert = ca.sign_csr(csr, YEAR)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_sign_csr_never_outlives_the_ca(tmp_path: Path) -> None:
    ca = ensure_ca(*_ca_paths(tmp_path), now=NOW)
    ca_end = ca.certificate.not_valid_after_utc

    late = ca.sign_csr(_csr(ec.generate_private_key(ec.SECP256R1())), 2 * YEAR, ca_end - YEAR)
    assert late.not_valid_after_utc == ca_end

    with pytest.raises(CaError, match="expired"):
        ca.sign_csr(_csr(ec.generate_private_key(ec.SECP256R1())), YEAR, ca_end + YEAR)


@needs_openssl
@pytest.mark.parametrize(
    "newkey",
    [
        pytest.param(["rsa:2048"], id="rsa-2048"),
        pytest.param(["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], id="ec-p256"),
        pytest.param(["ec", "-pkeyopt", "ec_paramgen_curve:P-384"], id="ec-p384"),
        pytest.param(["ed25519"], id="ed25519"),
    ],
)
def test_openssl_made_csr_is_signed_and_verifies(
    tmp_path: Path, ca: CertificateAuthority, ca_pem: Path, newkey: list[str]
) -> None:
    made = _openssl(
        "req", "-new", "-newkey", *newkey, "-nodes", "-keyout", "key.pem",
        "-subj", "/CN=x/O=Example", "-out", "csr.pem", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr

    cert = ca.sign_csr((tmp_path / "csr.pem").read_bytes(), YEAR)
    (tmp_path / "cert.pem").write_bytes(_cert_pem(cert))

    assert cert.subject.rfc4514_string() == "O=Example,CN=x"
    result = _openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        ca_pem,
        "cert.pem",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cert.pem: OK"


# --- refusing CSRs ---------------------------------------------------------------------


def _tampered_body() -> bytes:
    # Same length, still parses, but the signed bytes changed.
    der = x509.load_pem_x509_csr(
        _csr(ec.generate_private_key(ec.SECP256R1()), "tamper-me")
    ).public_bytes(serialization.Encoding.DER)
    assert der.count(b"tamper-me") == 1
    return _pem(der.replace(b"tamper-me", b"tamper-ME"), "CERTIFICATE REQUEST")


def _tampered_signature() -> bytes:
    # An RSA signature is the last bytes of the DER, raw: flipping one keeps it parseable.
    der = x509.load_pem_x509_csr(_csr(rsa.generate_private_key(65537, 2048))).public_bytes(
        serialization.Encoding.DER
    )
    return _pem(der[:-1] + bytes([der[-1] ^ 0x01]), "CERTIFICATE REQUEST")


def _certificate_pem() -> bytes:
    return CertificateAuthority.generate().certificate_pem.encode()


@pytest.mark.parametrize(
    ("make_csr", "reason"),
    [
        pytest.param(lambda: b"", "csr: empty", id="empty"),
        pytest.param(lambda: "  \n", "csr: empty", id="blank"),
        pytest.param(lambda: b"garbage", "csr: not a PEM certificate signing request", id="junk"),
        pytest.param(
            lambda: (
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            ),
            "csr: not a PEM certificate signing request",
            id="bad-der",
        ),
        pytest.param(
            _certificate_pem,
            "csr: a PEM certificate, not a certificate signing request",
            id="certificate",
        ),
        pytest.param(lambda: b"A" * 70_000, "csr: larger than", id="too-large"),
        pytest.param(_tampered_body, "csr: signature does not verify", id="tampered-body"),
        pytest.param(_tampered_signature, "csr: signature does not verify", id="tampered-sig"),
        pytest.param(
            lambda: _csr(rsa.generate_private_key(65537, 1024)),
            "csr: RSA key of 1024 bits, expected at least 2048",
            id="rsa-1024",
        ),
        pytest.param(
            lambda: _csr(ec.generate_private_key(ec.SECP192R1())),
            "csr: EC key on curve secp192r1, expected P-256 or P-384",
            id="ec-p192",
        ),
        pytest.param(
            lambda: _csr(ec.generate_private_key(ec.SECP256K1())),
            "csr: EC key on curve secp256k1, expected P-256 or P-384",
            id="ec-secp256k1",
        ),
        pytest.param(
            lambda: _csr(ec.generate_private_key(ec.SECP521R1())),
            "csr: EC key on curve secp521r1, expected P-256 or P-384",
            id="ec-p521",
        ),
        pytest.param(
            lambda: _csr(dsa.generate_private_key(2048)),
            "csr: DSA key not accepted, expected RSA, EC P-256/P-384 or Ed25519",
            id="dsa",
        ),
        pytest.param(
            lambda: _csr(ed448.Ed448PrivateKey.generate()),
            "csr: Ed448 key not accepted",
            id="ed448",
        ),
    ],
)
def test_sign_csr_refuses(
    ca: CertificateAuthority, make_csr: Callable[[], bytes | str], reason: str
) -> None:
    with pytest.raises(CsrError) as refused:
        ca.sign_csr(make_csr(), YEAR)
    assert str(refused.value).startswith(reason)
    assert isinstance(refused.value, ValueError)


@needs_openssl
@pytest.mark.parametrize(
    ("newkey", "curve", "reason"),
    [
        pytest.param(["rsa:1024"], None, "csr: RSA key of 1024 bits", id="rsa-1024"),
        pytest.param(
            ["ec", "-pkeyopt", "ec_paramgen_curve:P-192"],
            "prime192v1",
            "csr: EC key on curve secp192r1",
            id="ec-p192",
        ),
        pytest.param(
            ["ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
            "secp256k1",
            "csr: EC key on curve secp256k1",
            id="ec-secp256k1",
        ),
    ],
)
def test_sign_csr_refuses_weak_openssl_keys(
    tmp_path: Path, ca: CertificateAuthority, newkey: list[str], curve: str | None, reason: str
) -> None:
    if curve is not None and not _openssl_has_curve(curve):
        pytest.skip(f"this openssl does not offer the curve {curve}")
    made = _openssl(
        "req", "-new", "-newkey", *newkey, "-nodes", "-keyout", "key.pem",
        "-subj", "/CN=x", "-out", "csr.pem", cwd=tmp_path,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"this openssl refuses to make such a key: {made.stderr.strip()}")

    with pytest.raises(CsrError, match=reason):
        ca.sign_csr((tmp_path / "csr.pem").read_bytes(), YEAR)


# --- real TLS handshakes ---------------------------------------------------------------


@pytest.fixture
def server_context(tmp_path: Path, ca: CertificateAuthority, ca_pem: Path) -> ssl.SSLContext:
    cert_path, key_path = tmp_path / "certs" / "server.pem", tmp_path / "certs" / "server.key"
    ensure_server_certificate(ca, cert_path, key_path)
    return server_ssl_context(cert_path, key_path, ca_pem)


@contextlib.asynccontextmanager
async def _tls_server(context: ssl.SSLContext) -> AsyncIterator[tuple[str, list[bytes | None]]]:
    """An aiohttp server on 127.0.0.1 that records each request's client certificate."""
    seen: list[bytes | None] = []

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        ssl_object = request.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        # The parsed form is only filled in for a verified certificate.
        assert bool(request.transport.get_extra_info("peercert")) is (der is not None)
        seen.append(der)
        return web.json_response({"fingerprint": fingerprint_sha256(der) if der else None})

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        yield f"https://127.0.0.1:{port}/", seen
    finally:
        await runner.cleanup()


def _client_context(
    ca_pem: Path, folder: Path, cert: x509.Certificate | None = None, key_pem: bytes = b""
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_pem))
    if cert is not None:
        (folder / "client.pem").write_bytes(_cert_pem(cert))
        (folder / "client.key").write_bytes(key_pem)
        context.load_cert_chain(folder / "client.pem", folder / "client.key")
    return context


async def _get(url: str, context: ssl.SSLContext) -> dict[str, str | None]:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        assert response.status == 200
        body: dict[str, str | None] = await response.json()
        return body


async def test_handshake_without_client_certificate(
    tmp_path: Path, server_context: ssl.SSLContext, ca_pem: Path
) -> None:
    async with _tls_server(server_context) as (url, seen):
        body = await _get(url, _client_context(ca_pem, tmp_path))

    assert body == {"fingerprint": None}
    assert seen == [None]


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048", "ed25519"])
async def test_handshake_with_client_certificate_from_csr(
    tmp_path: Path,
    server_context: ssl.SSLContext,
    ca: CertificateAuthority,
    ca_pem: Path,
    key_type: str,
) -> None:
    key = KEYS[key_type]()
    cert = ca.sign_csr(_csr(key), YEAR)
    client = _client_context(ca_pem, tmp_path, cert, _key_pem(key))

    async with _tls_server(server_context) as (url, seen):
        body = await _get(url, client)

    der = cert.public_bytes(serialization.Encoding.DER)
    assert seen == [der]
    assert body == {"fingerprint": fingerprint_sha256(cert)}


@needs_openssl
async def test_handshake_with_openssl_made_key(
    tmp_path: Path, server_context: ssl.SSLContext, ca: CertificateAuthority, ca_pem: Path
) -> None:
    made = _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
        "-subj", "/CN=sdk", "-out", "csr.pem", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    cert = ca.sign_csr((tmp_path / "csr.pem").read_bytes(), YEAR)
    client = _client_context(ca_pem, tmp_path, cert, (tmp_path / "key.pem").read_bytes())

    async with _tls_server(server_context) as (url, seen):
        body = await _get(url, client)

    assert body == {"fingerprint": fingerprint_sha256(cert)}
    assert len(seen) == 1


@pytest.mark.parametrize("problem", ["other-ca", "expired"])
async def test_handshake_fails_for_a_bad_client_certificate(
    tmp_path: Path,
    server_context: ssl.SSLContext,
    ca: CertificateAuthority,
    ca_pem: Path,
    problem: str,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    if problem == "other-ca":
        cert = CertificateAuthority.generate().sign_csr(_csr(key), YEAR)
    else:
        cert = ca.sign_csr(_csr(key), timedelta(days=1), now=datetime.now(UTC) - 2 * YEAR)
    client = _client_context(ca_pem, tmp_path, cert, _key_pem(key))

    async with _tls_server(server_context) as (url, seen):
        with pytest.raises(aiohttp.ClientError):
            await _get(url, client)

    assert seen == []


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_server_context_settings(
    tmp_path: Path, server_context: ssl.SSLContext, ca_pem: Path
) -> None:
    assert server_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context.verify_mode == ssl.CERT_OPTIONAL
    client = _client_context(ca_pem, tmp_path)
    client.set_alpn_protocols(["h2", "http/1.1"])

    async with _tls_server(server_context) as (url, _):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        try:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        finally:
            writer.close()
            await writer.wait_closed()

        too_old = _client_context(ca_pem, tmp_path)
        too_old.minimum_version = ssl.TLSVersion.TLSv1
        too_old.maximum_version = ssl.TLSVersion.TLSv1_1
        too_old.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that it is the server that says no
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=too_old)


def test_server_context_reports_unloadable_files(tmp_path: Path, ca_pem: Path) -> None:
    with pytest.raises(TlsConfigError, match="server certificate"):
        server_ssl_context(tmp_path / "missing.pem", tmp_path / "missing.key", ca_pem)
    with pytest.raises(TlsConfigError, match="client CA"):
        server_ssl_context(tmp_path / "certs" / "ca.pem", tmp_path / "certs" / "ca.key", "nope")

"""The gateway's internal certificate authority.

It signs the HTTPS listener's certificate (`gateway init`) and the client certificates
that networks request with a CSR (mTLS). Everything here is synchronous: key generation
and file access happen at start-up or in a worker thread (`asyncio.to_thread`), never on
the event loop of a running server. Signing one certificate with the P-256 CA key takes
well under a millisecond.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

StrPath = str | os.PathLike[str]

CA_COMMON_NAME = "gateway internal CA"
CA_VALIDITY = timedelta(days=3650)
SERVER_HOSTS = ("localhost", "127.0.0.1", "::1")
SERVER_VALIDITY = timedelta(days=365)

MAX_CSR_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # bigger keys buy nothing and make every handshake slower
ACCEPTED_EC_CURVES = ("secp256r1", "secp384r1")

_EMPTY_SUBJECT_STANDIN = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway client")])

# Tolerates clients whose clock is a little behind ours.
_BACKDATE = timedelta(minutes=1)
_PEM_CSR_MARKERS = (
    b"-----BEGIN CERTIFICATE REQUEST-----",
    b"-----BEGIN NEW CERTIFICATE REQUEST-----",
)


class CaError(Exception):
    """The CA files are half present, unreadable or do not belong together."""


class CsrError(ValueError):
    """A certificate signing request was refused; the message is a short reason for the user."""


class CertificateAuthority:
    """A CA certificate and its private key (exported only to write the key file)."""

    __slots__ = ("_certificate", "_key")

    def __init__(
        self, certificate: x509.Certificate, key: CertificateIssuerPrivateKeyTypes
    ) -> None:
        if _spki(certificate.public_key()) != _spki(key.public_key()):
            raise CaError("the CA private key does not match the CA certificate")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.value.ca:
            raise CaError("the CA certificate is not a CA (basicConstraints CA:TRUE missing)")
        self._certificate = certificate
        self._key = key

    @classmethod
    def generate(cls, now: datetime | None = None) -> CertificateAuthority:
        """A new self-signed EC P-256 CA, valid for ten years from `now`."""
        start = _utc(now)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - _BACKDATE)
            .not_valid_after(start + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def from_pem(cls, certificate_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
        except ValueError as exc:
            raise CaError(f"the CA certificate is not a PEM certificate: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise CaError(f"the CA key is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(
            key,
            ec.EllipticCurvePrivateKey
            | rsa.RSAPrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise CaError(f"the CA key type {type(key).__name__} cannot sign certificates")
        return cls(certificate, key)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def certificate_pem(self) -> str:
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint_sha256(self._certificate)

    def private_key_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM, for writing it to its 0600 file."""
        return _private_pem(self._key)

    def issue_server_certificate(
        self, hosts: Sequence[str], validity: timedelta, *, now: datetime | None = None
    ) -> tuple[bytes, bytes]:
        """A TLS server certificate for `hosts` (DNS names and IP addresses).

        Returns `(certificate_pem, key_pem)`; the key is a fresh EC P-256 key.
        """
        if isinstance(hosts, str) or not hosts:
            raise ValueError("hosts must be a non-empty sequence of names or addresses")
        key = ec.generate_private_key(ec.SECP256R1())
        first = hosts[0]
        # A common name is optional once there is a SAN; it only has to fit in 64 characters.
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, first)] if len(first) <= 64 else []
        )
        builder = (
            self._leaf_builder(subject, key.public_key(), validity, now)
            .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), False)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        )
        certificate = self._sign(builder)
        return certificate.public_bytes(serialization.Encoding.PEM), _private_pem(key)

    def sign_csr(
        self, csr_pem: bytes | str, validity: timedelta, now: datetime | None = None
    ) -> x509.Certificate:
        """A client (mTLS) certificate for the key in a PEM CSR; `CsrError` says why not.

        Only the subject (`CN=gateway client` if it is empty) and the public key are taken
        from the CSR. Requested extensions are ignored: the CA alone decides what the
        certificate may be used for.
        """
        csr = parse_csr(csr_pem)
        public_key = csr.public_key()
        # RFC 5280 wants a name somewhere; strict verifiers reject a blank subject.
        subject = csr.subject if len(csr.subject) else _EMPTY_SUBJECT_STANDIN
        key_usage = _key_usage(
            digital_signature=True, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)
        )
        builder = (
            self._leaf_builder(subject, public_key, validity, now)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        )
        return self._sign(builder)

    def _leaf_builder(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        validity: timedelta,
        now: datetime | None,
    ) -> x509.CertificateBuilder:
        if validity <= timedelta(0):
            raise ValueError("validity must be positive")
        start = _utc(now)
        # A certificate cannot usefully outlive its issuer: verification would fail anyway.
        end = min(start + validity, self._certificate.not_valid_after_utc)
        if end <= start:
            raise CaError("the CA certificate has expired: create a new CA")
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - _BACKDATE)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(self._authority_key_identifier(), False)
        )

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self._certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        # Ed25519/Ed448 hash internally and refuse a separate digest.
        eddsa = isinstance(self._key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        return builder.sign(self._key, None if eddsa else hashes.SHA256())


def parse_csr(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    """Parse and check a PEM CSR: well-formed, self-signature valid, an accepted key."""
    data = csr_pem.encode("utf-8", "replace") if isinstance(csr_pem, str) else bytes(csr_pem)
    if not data.strip():
        raise CsrError("csr: empty")
    if len(data) > MAX_CSR_BYTES:
        raise CsrError(f"csr: larger than {MAX_CSR_BYTES} bytes")
    if not any(marker in data for marker in _PEM_CSR_MARKERS):
        if b"-----BEGIN CERTIFICATE-----" in data:
            raise CsrError("csr: a PEM certificate, not a certificate signing request")
        raise CsrError("csr: not a PEM certificate signing request")
    try:
        csr = x509.load_pem_x509_csr(data)
        public_key = csr.public_key()
        csr.subject  # noqa: B018  (parsed lazily: fail here, not while signing)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrError("csr: not a PEM certificate signing request") from exc
    _check_key(public_key)
    try:
        signature_ok = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrError("csr: unsupported signature algorithm") from exc
    if not signature_ok:
        raise CsrError("csr: signature does not verify")
    return csr


def _check_key(key: CertificatePublicKeyTypes) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrError(f"csr: RSA key of {key.key_size} bits, expected at least {MIN_RSA_BITS}")
        if key.key_size > MAX_RSA_BITS:
            raise CsrError(f"csr: RSA key of {key.key_size} bits, expected at most {MAX_RSA_BITS}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ACCEPTED_EC_CURVES:
            raise CsrError(f"csr: EC key on curve {key.curve.name}, expected P-256 or P-384")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
        raise CsrError(f"csr: {kind} key not accepted, expected RSA, EC P-256/P-384 or Ed25519")


def fingerprint_sha256(certificate: x509.Certificate | bytes) -> str:
    """SHA-256 of the DER encoding, lowercase hex without separators.

    Takes a certificate object or DER bytes (what `SSLObject.getpeercert(True)` returns).
    """
    der = (
        certificate.public_bytes(serialization.Encoding.DER)
        if isinstance(certificate, x509.Certificate)
        else bytes(certificate)
    )
    return hashlib.sha256(der).hexdigest()


def ensure_ca(
    cert_path: StrPath, key_path: StrPath, now: datetime | None = None
) -> CertificateAuthority:
    """Load the CA from its two files, or create both if neither exists. Never overwrites."""
    cert_file, key_file = Path(cert_path), Path(key_path)
    if _pair_exists(cert_file, key_file, what="CA"):
        try:
            return CertificateAuthority.from_pem(cert_file.read_bytes(), key_file.read_bytes())
        except CaError as exc:
            raise CaError(f"{cert_file} / {key_file}: {exc}") from exc
    ca = CertificateAuthority.generate(now)
    # The key first: a crash in between leaves a key without a certificate, which
    # `_pair_exists` reports, rather than a certificate nobody can sign with.
    _write_new(key_file, ca.private_key_pem(), 0o600)
    _write_new(cert_file, ca.certificate_pem.encode("ascii"), 0o644)
    return ca


def ensure_server_certificate(
    ca: CertificateAuthority,
    cert_path: StrPath,
    key_path: StrPath,
    hosts: Sequence[str] = SERVER_HOSTS,
    *,
    validity: timedelta = SERVER_VALIDITY,
    now: datetime | None = None,
) -> bool:
    """Write a server certificate and key signed by `ca` if neither exists.

    Returns True when they were created, False when both were already there.
    """
    cert_file, key_file = Path(cert_path), Path(key_path)
    if _pair_exists(cert_file, key_file, what="server certificate"):
        return False
    certificate_pem, key_pem = ca.issue_server_certificate(hosts, validity, now=now)
    _write_new(key_file, key_pem, 0o600)
    _write_new(cert_file, certificate_pem, 0o644)
    return True


def _pair_exists(cert_file: Path, key_file: Path, *, what: str) -> bool:
    cert_exists, key_exists = cert_file.exists(), key_file.exists()
    if cert_exists != key_exists:
        present, missing = (cert_file, key_file) if cert_exists else (key_file, cert_file)
        raise CaError(
            f"{what}: {present} exists but {missing} does not; restore {missing}, or remove "
            f"{present} to create a new pair (certificates signed by the old one stop working)"
        )
    return cert_exists


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` holding `data`, with `mode`; an existing file is never replaced.

    The data goes to a temporary file first and is hard-linked into place, so nobody
    ever sees a half-written file and a file created meanwhile is not overwritten.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise CaError(f"{path} was created by someone else meanwhile; run again") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _utc(now: datetime | None) -> datetime:
    # Certificates carry whole seconds; dropping microseconds keeps `now + validity` exact.
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host.lower())


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )

"""TLS: the internal CA (server certificate, CSR signing) and the listener's SSL context."""

from gateway.tls.ca import (
    CaError,
    CertificateAuthority,
    CsrError,
    ensure_ca,
    ensure_server_certificate,
    fingerprint_sha256,
    parse_csr,
)
from gateway.tls.context import TlsConfigError, server_ssl_context

__all__ = [
    "CaError",
    "CertificateAuthority",
    "CsrError",
    "TlsConfigError",
    "ensure_ca",
    "ensure_server_certificate",
    "fingerprint_sha256",
    "parse_csr",
    "server_ssl_context",
]

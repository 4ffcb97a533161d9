"""The client certificate a request came with, as its SHA-256 fingerprint.

Two sources: the TLS handshake of the gateway's own HTTPS listener (the chain was
already verified against the gateway CA by then), or, behind a TLS-terminating load
balancer, a configured header (`mtls.client_cert_header`) that is believed only when
the peer is one of `server.trusted_proxies`. Pinning compares fingerprints of
certificates the gateway CA signed, so a header's certificate needs no chain check
of its own: only an uploaded certificate can match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache
from urllib.parse import unquote

from aiohttp import web
from cryptography import x509

from gateway.proxy.headers import TrustedProxies

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"
MAX_HEADER_CERTIFICATE = 16 * 1024


def handshake_fingerprint(request: web.Request) -> str | None:
    """The fingerprint of the certificate presented in this connection's TLS handshake."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


@lru_cache(maxsize=1024)
def header_fingerprint(value: str) -> str | None:
    """The fingerprint of a certificate passed in a header, None if it holds none.

    Accepted spellings: PEM, URL-encoded PEM (nginx `$ssl_client_escaped_cert`, AWS ALB)
    and base64 DER (HAProxy `ssl_c_der,base64`).
    """
    if len(value) > MAX_HEADER_CERTIFICATE:
        return None
    text = unquote(value) if "%" in value else value
    if _PEM_BEGIN in text:
        text = text.split(_PEM_BEGIN, 1)[1].split(_PEM_END, 1)[0]
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
    return hashlib.sha256(der).hexdigest()


def client_certificate(
    request: web.Request, header: str | None, trusted: TrustedProxies
) -> str | None:
    """The request's client-certificate fingerprint, from the handshake or a trusted header."""
    fingerprint = handshake_fingerprint(request)
    if fingerprint is not None or header is None:
        return fingerprint
    value = request.headers.get(header)
    if value is None or not trusted.trusts(request.remote):
        return None
    return header_fingerprint(value)

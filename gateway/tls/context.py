"""The HTTPS listener's SSL context.

Building it reads the certificate, key and CA files: that is blocking, so it is done
at start-up (or on reload from a thread), never per request.
"""

from __future__ import annotations

import os
import ssl

StrPath = str | os.PathLike[str]


class TlsConfigError(Exception):
    """The server certificate, its key or the client CA could not be loaded."""


def server_ssl_context(
    cert_path: StrPath, key_path: StrPath, client_ca_path: StrPath
) -> ssl.SSLContext:
    """A TLS 1.2+ server context that asks for, but does not require, a client certificate.

    End-user SDK traffic has no client certificate, so the handshake must succeed
    without one (`CERT_OPTIONAL`); whether a route needs one is decided per request.
    A certificate that *is* presented must chain to `client_ca_path`, the only trust
    anchor (the system store is deliberately not loaded), otherwise the handshake fails.
    """
    # PROTOCOL_TLS_SERVER, unlike create_default_context(), loads no system CAs.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Client-initiated TLS 1.2 renegotiation only costs the server CPU.
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TlsConfigError(
            f"cannot load the server certificate {os.fspath(cert_path)!s} "
            f"with key {os.fspath(key_path)!s}: {exc}"
        ) from exc
    try:
        context.load_verify_locations(cafile=client_ca_path)
    except (OSError, ValueError) as exc:
        raise TlsConfigError(
            f"cannot load the client CA {os.fspath(client_ca_path)!s}: {exc}"
        ) from exc
    context.verify_mode = ssl.CERT_OPTIONAL
    # The server speaks HTTP/1.1 only; saying so stops clients from trying h2.
    context.set_alpn_protocols(["http/1.1"])
    return context

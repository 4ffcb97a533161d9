"""`gateway init`: create whatever is missing (CA, server certificate, key-encryption key,
store schema) and never overwrite anything. Safe to run on every start."""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.config import Config, sqlite_path
from gateway.store import Store, open_store
from gateway.store.facts import CA_SHA256, recorded_fact
from gateway.tls.ca import ensure_ca, ensure_server_certificate, fingerprint_sha256

SERVER_CERT_VALIDITY = timedelta(days=825)


def kek_path(config: Config) -> Path:
    return Path(config.tokens.signing_keys) / "kek.key"


def ensure_kek(path: Path) -> bool:
    """Write a random 256-bit key-encryption key (mode 0600) unless one exists."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return True


def init_files(config: Config) -> dict[str, Any]:
    """The file part of init (blocking; run before the event loop or in a thread)."""
    created: list[str] = []
    ca_cert, ca_key = Path(config.mtls.ca_cert), Path(config.mtls.ca_key)
    had_ca = ca_cert.exists()
    ca = ensure_ca(ca_cert, ca_key)
    if not had_ca:
        created.append("ca")
    result: dict[str, Any] = {"ca": str(ca_cert)}
    https = config.server.https
    if https is not None:
        if ensure_server_certificate(ca, Path(https.cert), Path(https.key)):
            created.append("server_certificate")
        result["server_certificate"] = https.cert
    kek = kek_path(config)
    if ensure_kek(kek):
        created.append("kek")
    result["kek"] = str(kek)
    result["created"] = created
    return result


class OtherCA(ValueError):
    """The CA files are not those of the deployment the store belongs to."""


def ca_fingerprint(path: Path) -> str:
    """SHA-256 of the CA certificate in `path` (blocking: reads the file)."""
    return fingerprint_sha256(x509.load_pem_x509_certificate(path.read_bytes()))


async def check_ca(config: Config, store: Store) -> None:
    """Refuse a CA other than the one the store's first instance recorded (and record
    this one if none was): like a different key-encryption key, a different CA splits the
    fleet, and unlike it nothing else would notice."""
    path = Path(config.mtls.ca_cert)
    ours = await asyncio.to_thread(ca_fingerprint, path)
    theirs = await recorded_fact(store, CA_SHA256, ours)
    if theirs != ours:
        raise OtherCA(
            f"mtls.ca_cert {path} (sha256 {ours}) is not the CA of this store's deployment"
            f" (sha256 {theirs}): copy ca.pem and ca.key from one of its instances"
        )


async def init_store(config: Config) -> dict[str, Any]:
    store = await open_store(config)
    try:
        version = await store.schema_version()
        await check_ca(config, store)
    finally:
        await store.close()
    location = (
        str(sqlite_path(config)) if store.dialect == "sqlite" else _without_password(config)
    )
    return {"store": location, "schema_version": version}


def _without_password(config: Config) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(config.store.url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)

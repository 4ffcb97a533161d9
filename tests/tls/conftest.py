"""A gateway with its HTTPS listener, CSRs made by the `openssl` command, TLS clients."""

from __future__ import annotations

import base64
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.testing.support import REPO, Clock, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import Gateway
from tests.proxy.conftest import in_process_gateway

# `openssl req -newkey` arguments for each key kind the tests use.
KEY_KINDS: dict[str, list[str]] = {
    "ec-p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ec-p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ec-p521": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "rsa-2048": ["-newkey", "rsa:2048"],
    "rsa-1024": ["-newkey", "rsa:1024"],
    "ed25519": ["-newkey", "ed25519"],
}


@dataclass
class ClientKey:
    key_path: Path
    csr_pem: str


def openssl_csr(folder: Path, kind: str = "ec-p256", cn: str = "console client") -> ClientKey:
    """A fresh private key and its CSR, both made by the openssl command line."""
    folder.mkdir(parents=True, exist_ok=True)
    index = len(list(folder.glob("client-*.key")))
    key_path, csr_path = folder / f"client-{index}.key", folder / f"client-{index}.csr"
    subprocess.run(
        ["openssl", "req", "-new", *KEY_KINDS[kind], "-nodes", "-subj", f"/CN={cn}",
         "-keyout", str(key_path), "-out", str(csr_path)],
        check=True, capture_output=True, timeout=60,
    )
    return ClientKey(key_path, csr_path.read_text())


def openssl_verify(ca: Path, certificate: Path) -> subprocess.CompletedProcess[str]:
    """`openssl verify` of a client certificate against the CA, for TLS client use."""
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), "-purpose", "sslclient", str(certificate)],
        capture_output=True, text=True, timeout=30,
    )


def tampered(csr_pem: str) -> str:
    """The same CSR with one byte of its subject changed: the self-signature breaks."""
    der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    changed = der.replace(b"console client", b"console clienT", 1)
    assert changed != der
    body = base64.encodebytes(changed).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A client certificate the gateway CA never saw (openssl req -x509)."""
    key, cert = folder / "self-signed.key", folder / "self-signed.pem"
    subprocess.run(
        ["openssl", "req", "-x509", *KEY_KINDS["ec-p256"], "-nodes", "-days", "30",
         "-subj", "/CN=stranger", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@dataclass
class TlsGateway(Gateway):
    https_url: str = ""
    folder: Path = Path()

    @property
    def ca_path(self) -> Path:
        return self.folder / "certs" / "ca.pem"

    def client_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
        return context

    async def tls_call(self, method: str, path: str, token: str | None = None, *,
                       cert: Path | None = None, key: Path | None = None,
                       **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        """One request over a new TLS connection, presenting `cert` if given."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        connector = aiohttp.TCPConnector(ssl=self.client_context(cert, key))
        async with aiohttp.ClientSession(connector=connector) as session, session.request(
            method, f"{self.https_url}{path}", headers=headers, **kwargs
        ) as response:
            text = await response.text()
            body: Any = text
            if response.content_type == "application/json":
                body = await response.json()
            return response.status, body, dict(response.headers)

    async def upload(self, token: str, name: str, client: ClientKey, folder: Path) -> Path:
        """Upload a CSR; return the path of the issued certificate, written for TLS clients."""
        status, body, _ = await self.call("POST", "/api/v3/networks/certificates", token,
                                          json={"name": name, "csr": client.csr_pem})
        assert status == 201, body
        cert_path = folder / f"{name}.pem"
        cert_path.write_text(body["certificate"])
        return cert_path


def tls_config(folder: Path, upstream: str, name: str = "config.yaml", **extra: Any) -> Path:
    """A config with both listeners; another `name` in the same folder shares its store,
    keys and CA (relative paths resolve against the folder)."""
    return write_config(folder, {
        "server": {
            "http": {"host": "127.0.0.1", "port": free_port()},
            "https": {"host": "127.0.0.1", "port": free_port(),
                      "cert": "certs/server.pem", "key": "certs/server.key"},
            **extra.pop("server", {}),
        },
        "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
        "policies": [str(REPO / "policies" / "default.yaml")],
        **extra,
    }, name=name)


@pytest.fixture
async def tls_gw(tmp_path: Path, clock: Clock) -> AsyncIterator[TlsGateway]:
    async with running_upstream("sg") as upstream:
        config = tls_config(tmp_path, upstream)
        https_port = yaml.safe_load(config.read_text())["server"]["https"]["port"]
        async with in_process_gateway(config, clock=clock) as (url, app), \
                aiohttp.ClientSession() as session:
            yield TlsGateway(url, app, session, upstream,
                             https_url=f"https://127.0.0.1:{https_port}", folder=tmp_path)

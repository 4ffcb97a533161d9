"""Client certificates for mTLS (API.md section 3): the CA signs CSRs, at most two per network.

A new or deleted certificate reaches every worker and instance through the change
feed (AuthState pins), so the listener's check never reads the store.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.api.audit import audited
from gateway.api.body import field_error, json_object, text_field
from gateway.api.caller import caller
from gateway.api.routes import endpoint, path_param
from gateway.config import Config
from gateway.errors import GatewayError, bad_request, conflict, forbidden, not_found
from gateway.keys import CA, FEED, RUNTIME, STORE
from gateway.notices import kinds
from gateway.notices.outbox import noticed
from gateway.store import AlreadyExists, Certificate, CertificateLimit
from gateway.timefmt import iso
from gateway.tls import CertificateAuthority, CsrError, fingerprint_sha256

MAX_CERTIFICATES = 2
MAX_NAME = 30


def certificate_json(certificate: Certificate) -> dict[str, Any]:
    return {
        "certificateId": certificate.id,
        "name": certificate.name,
        "certificate": certificate.certificate_pem,
        "fingerprintSha256": certificate.fingerprint_sha256,
        "notBefore": iso(certificate.not_before),
        "notAfter": iso(certificate.not_after),
        "createdAt": iso(certificate.created_at),
    }


def _csr_field(body: dict[str, Any]) -> str:
    csr = body.get("csr")
    if csr is None:
        raise field_error("csr", "is required")
    if not isinstance(csr, str):
        raise field_error("csr", "must be a string holding a PEM certificate signing request")
    if not csr.strip():
        raise field_error("csr", "must not be empty")
    return csr


def _name_field(body: dict[str, Any]) -> str:
    name = text_field(body, "name", max_length=MAX_NAME, required=True)
    assert name is not None
    if not name.strip():
        raise field_error("name", "must not be blank")
    return name


async def create_certificate(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await json_object(request)
    name = _name_field(body)
    csr = _csr_field(body)
    store = request.app[STORE]
    network = await store.get_network(principal.network_id)
    if network is None:
        raise not_found("network Not Found.")
    if not network.use_secure_authentication:
        raise forbidden("certificates need secure mode: turn useSecureAuthentication on first")
    if await store.certificate_count(network.id) >= MAX_CERTIFICATES:
        raise _limit_reached()
    config = request.app[RUNTIME].current.config
    validity = timedelta(seconds=config.mtls.certificate_validity)
    try:
        signed = request.app[CA].sign_csr(csr, validity)
    except CsrError as exc:
        raise bad_request(str(exc)) from None
    fingerprint = fingerprint_sha256(signed)
    try:
        async with audited(request, "certificate.create", f"{name} ({fingerprint})"), \
                noticed(request, kinds.certificate_added(principal, name)):
            certificate = await store.add_certificate(
                network.id,
                name,
                signed.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                fingerprint,
                signed.not_valid_before_utc.timestamp(),
                signed.not_valid_after_utc.timestamp(),
                limit=MAX_CERTIFICATES,
            )
    except CertificateLimit:
        raise _limit_reached() from None
    except AlreadyExists:
        raise conflict(f"a certificate named {name!r} already exists in this network") from None
    await request.app[FEED].catch_up()
    return web.json_response(certificate_json(certificate), status=201)


def _limit_reached() -> GatewayError:
    return conflict(
        f"the network already has {MAX_CERTIFICATES} certificates: delete one first"
    )


async def list_certificates(request: web.Request) -> web.Response:
    principal = caller(request)
    certificates = await request.app[STORE].list_certificates(principal.network_id)
    return web.json_response({"certificates": [certificate_json(c) for c in certificates]})


async def delete_certificate(request: web.Request) -> web.Response:
    principal = caller(request)
    certificate_id = path_param(request, "certificate_id")
    store = request.app[STORE]
    listed = {c.id: c for c in await store.list_certificates(principal.network_id)}
    certificate = listed.get(certificate_id)
    if certificate is None:
        raise not_found("certificateId Not Found.")
    target = f"{certificate.name} ({certificate.fingerprint_sha256})"
    async with audited(request, "certificate.delete", target), noticed(
            request, kinds.certificate_deleted(principal, certificate.id, certificate.name)):
        if await store.delete_certificate(principal.network_id, certificate_id) is None:
            raise not_found("certificateId Not Found.")  # deleted meanwhile
    await request.app[FEED].catch_up()
    return web.json_response({"success": True})


async def ca_certificate(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[CA].certificate_pem, content_type="application/x-pem-file"
    )


async def load_ca(config: Config) -> CertificateAuthority:
    """The CA `gateway init` made; its key is read once and kept in memory only."""

    def read() -> CertificateAuthority:
        return CertificateAuthority.from_pem(
            Path(config.mtls.ca_cert).read_bytes(), Path(config.mtls.ca_key).read_bytes()
        )

    return await asyncio.to_thread(read)


ENDPOINTS = (
    endpoint("GET", "/api/v3/networks/certificates/ca", ca_certificate),
    endpoint("GET", "/api/v3/networks/certificates", list_certificates),
    endpoint("POST", "/api/v3/networks/certificates", create_certificate),
    endpoint("DELETE", "/api/v3/networks/certificates/{certificate_id}", delete_certificate),
)

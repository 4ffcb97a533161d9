"""Deliveries: every kind a write causes arrives once, signed; failures are retried with
the same delivery id; nothing is sent twice at once by two gateways on one store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.keys import STORE
from gateway.notices import kinds
from gateway.store.db import Row
from gateway.testing.support import Clock
from tests.notices.conftest import Hooks, gateway_config
from tests.notices.receiver import Receiver
from tests.proxy.conftest import in_process_gateway

SETTLE = 0.5  # after the last expected delivery: time for a duplicate to show up


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    ).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _received(receiver: Receiver, count: int) -> Callable[[], bool]:
    """A `wait_for` condition: exactly `count` deliveries have arrived."""
    return lambda: len(receiver.received) == count


async def test_every_kind_a_write_causes_arrives_once(hooks: Hooks) -> None:
    gw, receiver = hooks.gw, hooks.receiver
    await hooks.subscribe("/all")
    await hooks.subscribe("/certs", events=(kinds.CERTIFICATE_ADDED, kinds.CERTIFICATE_DELETED))
    root = await gw.admin_token(hooks.network, "root", "super-admin")
    await gw.admin_token(hooks.network, "alice", "admin")

    async def ok(method: str, path: str, token: str, **kwargs: object) -> dict[str, object]:
        status, body, _ = await gw.call(method, path, token, **kwargs)
        assert status in (200, 201), (method, path, body)
        return dict(body)

    await ok("PUT", "/api/v3/networks/me", hooks.admin, json={"useSecureAuthentication": True})
    rotated = await ok("POST", "/api/v1/admin-token", hooks.admin)
    boss = str(rotated["adminToken"])
    await ok("DELETE", "/api/v1/admin-token", root, json={"username": "alice"})
    await ok("POST", "/api/v3/networks/server-key", boss)
    certificate = await ok("POST", "/api/v3/networks/certificates", boss,
                           json={"name": "laptop", "csr": _csr()})
    await ok("DELETE", f"/api/v3/networks/certificates/{certificate['certificateId']}", boss)
    await ok("PUT", "/api/v3/networks/me", boss, json={"mtlsEnabled": True})  # last: needs certs

    expected = Counter({
        kinds.SECURE_MODE_SWITCHED: 1, kinds.ADMIN_TOKEN_GENERATED: 1,
        kinds.ADMIN_TOKEN_SUPERSEDED: 1, kinds.ADMIN_TOKEN_REVOKED: 1,
        kinds.SERVER_KEY_GENERATED: 1, kinds.CERTIFICATE_ADDED: 1,
        kinds.CERTIFICATE_DELETED: 1, kinds.MTLS_SWITCHED: 1,
    })
    await receiver.wait_for(lambda: len(receiver.acked()) >= 8 + 2)
    await asyncio.sleep(SETTLE)
    assert Counter(r.kind for r in receiver.received if r.path == "/all") == expected
    assert Counter(r.kind for r in receiver.received if r.path == "/certs") == Counter(
        {kinds.CERTIFICATE_ADDED: 1, kinds.CERTIFICATE_DELETED: 1})
    assert len({r.delivery_id for r in receiver.received}) == len(receiver.received)

    data = {r.kind: r.body["data"] for r in receiver.received if r.path == "/all"}
    rows = await hooks.gw.app[STORE].db.fetch(
        "SELECT jti, subject, grace_until, revoked_at FROM credentials WHERE kind = 'admin'")
    by_subject: dict[str, list[Row]] = {}
    for row in rows:
        by_subject.setdefault(row["subject"], []).append(row)
    (superseded,) = [r for r in by_subject["boss"] if r["grace_until"] is not None]
    (current,) = [r for r in by_subject["boss"] if r["grace_until"] is None]
    assert data[kinds.ADMIN_TOKEN_GENERATED] == {
        "username": "boss", "tokenId": current["jti"], "actor": "boss",
        "issuedAt": rotated["issuedAt"], "expiresAt": rotated["expiresAt"]}
    assert data[kinds.ADMIN_TOKEN_SUPERSEDED] == {
        "username": "boss", "tokenId": superseded["jti"], "actor": "boss",
        "graceUntil": rotated["previousTokenValidUntil"]}
    assert data[kinds.ADMIN_TOKEN_REVOKED] == {
        "username": "alice", "tokenIds": [r["jti"] for r in by_subject["alice"]],
        "actor": "root"}
    assert data[kinds.SERVER_KEY_GENERATED] == {"actor": "boss"}
    assert data[kinds.CERTIFICATE_ADDED] == {
        "name": "laptop", "fingerprintSha256": certificate["fingerprintSha256"],
        "notAfter": certificate["notAfter"], "actor": "boss"}
    assert data[kinds.CERTIFICATE_DELETED] == {
        "certificateId": certificate["certificateId"], "name": "laptop",
        "fingerprintSha256": certificate["fingerprintSha256"], "actor": "boss"}
    assert data[kinds.SECURE_MODE_SWITCHED] == {"enabled": True, "actor": "boss"}
    assert data[kinds.MTLS_SWITCHED] == {"enabled": True, "actor": "boss"}


async def test_a_write_that_changes_nothing_announces_nothing(hooks: Hooks) -> None:
    await hooks.subscribe("/all")
    status, _, _ = await hooks.gw.call("PUT", "/api/v3/networks/me", hooks.admin,
                                       json={"useSecureAuthentication": False})
    assert status == 200
    status, _, _ = await hooks.gw.call("POST", "/api/v3/networks/certificates", hooks.admin,
                                       json={"name": "x", "csr": _csr()})
    assert status == 403  # secure mode off: refused, nothing written
    await asyncio.sleep(SETTLE)
    assert hooks.receiver.received == []


async def test_failures_are_retried_with_the_same_delivery_id(hooks: Hooks) -> None:
    receiver = hooks.receiver
    created = await hooks.subscribe("/flaky", events=(kinds.SERVER_KEY_GENERATED,))
    receiver.script["/flaky"] = [500, 503, 200]
    await hooks.gw.call("PUT", "/api/v3/networks/me", hooks.admin,
                        json={"useSecureAuthentication": True})
    status, _, _ = await hooks.gw.call("POST", "/api/v3/networks/server-key", hooks.admin)
    assert status == 200
    await receiver.wait_for(lambda: len(receiver.received) == 1)
    await asyncio.sleep(SETTLE)
    assert len(receiver.received) == 1  # not again before its backoff
    await hooks.settled()
    hooks.clock.advance(10)  # retry_initial: the first retry is due within it
    await receiver.wait_for(lambda: len(receiver.received) == 2)
    await hooks.settled()
    hooks.clock.advance(20)
    await receiver.wait_for(lambda: len(receiver.received) == 3)
    first, second, third = receiver.received
    assert [r.status for r in receiver.received] == [500, 503, 200]
    assert first.delivery_id == second.delivery_id == third.delivery_id
    assert first.body == second.body == third.body  # the same bytes, signed anew
    assert first.timestamp < second.timestamp < third.timestamp
    hooks.clock.advance(100)
    await asyncio.sleep(SETTLE)
    assert len(receiver.received) == 3
    listed = (await hooks.gw.call("GET", "/api/v3/webhooks", hooks.admin))[1]["webhooks"]
    assert listed[0]["webhookId"] == created["webhookId"]
    deliveries = listed[0]["deliveries"]
    assert (deliveries["pending"], deliveries["failed"], deliveries["lastError"]) == (0, 0, None)
    assert deliveries["lastDeliveredAt"] is not None


async def test_given_up_after_max_attempts(hooks: Hooks) -> None:
    receiver = hooks.receiver
    await hooks.subscribe("/down", events=(kinds.SECURE_MODE_SWITCHED,))
    receiver.script["/down"] = [500] * 10
    await hooks.gw.call("PUT", "/api/v3/networks/me", hooks.admin,
                        json={"useSecureAuthentication": True})
    for attempt in range(1, 5):  # max_attempts 4
        await receiver.wait_for(_received(receiver, attempt))
        await hooks.settled()
        hooks.clock.advance(40)  # retry_max
    await asyncio.sleep(SETTLE)
    assert len(receiver.received) == 4
    assert len({r.delivery_id for r in receiver.received}) == 1
    deliveries = (await hooks.gw.call("GET", "/api/v3/webhooks", hooks.admin))[1][
        "webhooks"][0]["deliveries"]
    assert (deliveries["pending"], deliveries["failed"], deliveries["lastError"]) == (
        0, 1, "HTTP 500")


async def test_a_deleted_subscription_gets_nothing_more(hooks: Hooks) -> None:
    receiver = hooks.receiver
    created = await hooks.subscribe("/gone", events=(kinds.SECURE_MODE_SWITCHED,))
    receiver.script["/gone"] = [500]
    await hooks.gw.call("PUT", "/api/v3/networks/me", hooks.admin,
                        json={"useSecureAuthentication": True})
    await receiver.wait_for(lambda: len(receiver.received) == 1)
    await hooks.settled()
    status, _, _ = await hooks.gw.call("DELETE", f"/api/v3/webhooks/{created['webhookId']}",
                                       hooks.admin)
    assert status == 200
    hooks.clock.advance(40)
    await asyncio.sleep(SETTLE)
    assert len(receiver.received) == 1
    row = await hooks.gw.app[STORE].db.fetchrow("SELECT COUNT(*) AS n FROM notice_outbox")
    assert row is not None and int(row["n"]) == 0


async def test_two_gateways_on_one_store_send_each_row_once(
    hooks: Hooks, tmp_path: Path, store_config: Path, clock: Clock, receiver: Receiver
) -> None:
    """Both workers claim from one outbox while the receiver is slow: every delivery
    arrives exactly once and none is ever in flight twice (the receiver checks)."""
    await hooks.subscribe("/both", events=(kinds.SERVER_KEY_GENERATED,))
    receiver.delay = 0.05
    await hooks.gw.call("PUT", "/api/v3/networks/me", hooks.admin,
                        json={"useSecureAuthentication": True})
    second = gateway_config(tmp_path, store_config, name="second.yaml")
    async with in_process_gateway(second, clock=clock) as (url, _app), \
            aiohttp.ClientSession() as session:
        for index in range(30):
            base = url if index % 2 else hooks.gw.url
            async with session.post(f"{base}/api/v3/networks/server-key",
                                    headers={"Authorization": f"Bearer {hooks.admin}"}) as answer:
                assert answer.status == 200
        await receiver.wait_for(lambda: len(receiver.acked()) >= 30, timeout=20)
        await asyncio.sleep(SETTLE)
    assert len(receiver.received) == 30
    assert len({r.delivery_id for r in receiver.received}) == 30

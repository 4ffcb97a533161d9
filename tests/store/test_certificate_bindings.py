"""Deleting a client certificate ends what is bound to it (RFC 8705, `mtls.bind_tokens`),
in the deletion's own transaction, on SQLite and PostgreSQL (fixture `backend`)."""

from __future__ import annotations

from gateway.store import Store
from gateway.store.credentials import IssuedCredential
from gateway.store.events import CertificateDeleted, ConsoleEnded, TokensRevoked

CERT = "ab" * 32
OTHER = "cd" * 32


def _token(jti: str, network_id: str, cert: str | None, kind: str = "admin") -> IssuedCredential:
    return IssuedCredential(jti=jti, kind=kind, network_id=network_id, subject="ada",
                            issued_at=0.0, expires_at=4e9, kid="k1", cert_sha256=cert)


async def test_a_deletion_revokes_spends_and_ends_what_its_certificate_holds(
    store: Store,
) -> None:
    network = await store.create_network("acme", "sg", secure=True)
    elsewhere = await store.create_network("other", "sg", secure=True)
    certificate = await store.add_certificate(network.id, "ci", "PEM", CERT, 0.0, 4e9, limit=2)
    await store.add_certificate(network.id, "spare", "PEM", OTHER, 0.0, 4e9, limit=2)
    for jti, net, cert in (("bound", network.id, CERT), ("other-cert", network.id, OTHER),
                           ("unbound", network.id, None), ("foreign", elsewhere.id, CERT)):
        await store.record_credential(_token(jti, net, cert))
    await store.record_credential(_token("bound-access", network.id, CERT, "access"))
    await store.create_auth_token("auth-bound", network.id, "bob", 4e9, CERT)
    await store.create_auth_token("auth-free", network.id, "bob", 4e9)
    await store.create_console_session("s-bound", network.id, "ada", "admin", 4e9, CERT)
    await store.create_console_session("s-free", network.id, "ada", "admin", 4e9)
    seq = await store.latest_seq()

    assert await store.delete_certificate(network.id, certificate.id) == certificate

    events = [change.event for change in await store.changes_since(seq)]
    assert events[0] == CertificateDeleted(network.id, CERT)
    [revoked] = [e for e in events if isinstance(e, TokensRevoked)]
    assert sorted(jti for jti, _ in revoked.tokens) == ["bound", "bound-access"]
    assert [e for e in events if isinstance(e, ConsoleEnded)] == [
        ConsoleEnded(network.id, ("s-bound",))]
    assert await store.console_session("s-bound") is None
    assert await store.console_session("s-free") is not None
    # The bound auth token is spent, even with its certificate; the other one still works.
    assert await store.consume_auth_token("auth-bound", network.id, "bob", 0, CERT) == "invalid"
    assert await store.consume_auth_token("auth-free", network.id, "bob", 0) == "ok"


async def test_a_bound_auth_token_is_redeemed_with_its_certificate_only(store: Store) -> None:
    network = await store.create_network("acme", "sg", secure=True)
    await store.create_auth_token("auth", network.id, "bob", 4e9, CERT)
    assert await store.consume_auth_token("auth", network.id, "bob", 0) == "unbound"
    assert await store.consume_auth_token("auth", network.id, "bob", 0, OTHER) == "unbound"
    # Refused attempts leave it unspent for its holder.
    assert await store.consume_auth_token("auth", network.id, "bob", 0, CERT) == "ok"
    assert await store.consume_auth_token("auth", network.id, "bob", 0, CERT) == "invalid"


async def test_console_sessions_keep_their_certificate(store: Store) -> None:
    network = await store.create_network("acme", "sg", secure=True)
    await store.create_console_session("bound", network.id, "ada", "admin", 4e9, CERT)
    await store.create_console_session("free", network.id, "ada", "admin", 4e9)
    bound, free = await store.console_session("bound"), await store.console_session("free")
    assert bound is not None and bound["cert_sha256"] == CERT
    assert free is not None and free["cert_sha256"] is None

"""The notice kinds, and what each admin write announces.

Each builder returns a `Build`: from the feed events the write appended in its
transaction to the notices it makes. Reading the events rather than the request means
a notice says what was committed (the tokens actually superseded, with the grace the
store gave them), and nothing when the write changed nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.auth.principal import Principal
from gateway.store.credentials import IssuedCredential
from gateway.store.events import (
    CertificateAdded,
    CertificateDeleted,
    Event,
    TokensRevoked,
    TokensSuperseded,
)
from gateway.store.outbox import Build, Notice
from gateway.timefmt import iso

ADMIN_TOKEN_GENERATED = "admin_token.generated"
ADMIN_TOKEN_SUPERSEDED = "admin_token.superseded"
ADMIN_TOKEN_GRACE_ENDING = "admin_token.grace_ending"
ADMIN_TOKEN_REVOKED = "admin_token.revoked"
ADMIN_TOKEN_EXPIRING = "admin_token.expiring"
SERVER_KEY_GENERATED = "server_key.generated"
CERTIFICATE_ADDED = "certificate.added"
CERTIFICATE_DELETED = "certificate.deleted"
SECURE_MODE_SWITCHED = "network.secure_mode_switched"
MTLS_SWITCHED = "network.mtls_switched"
WEBHOOK_TEST = "webhook.test"  # sent on request to one subscription, whatever it wants

KINDS = (
    ADMIN_TOKEN_GENERATED, ADMIN_TOKEN_SUPERSEDED, ADMIN_TOKEN_GRACE_ENDING,
    ADMIN_TOKEN_REVOKED, ADMIN_TOKEN_EXPIRING, SERVER_KEY_GENERATED, CERTIFICATE_ADDED,
    CERTIFICATE_DELETED, SECURE_MODE_SWITCHED, MTLS_SWITCHED,
)
GRACE_NOTICE = 3600.0  # `admin_token.grace_ending`: the grace ends within the hour


def admin_token_rotated(principal: Principal, credential: IssuedCredential) -> Build:
    """`POST /api/v1/admin-token`: the new token, and the caller's earlier ones superseded
    (or revoked at once when the grace is 0)."""

    def build(events: Sequence[Event]) -> list[Notice]:
        network, username = credential.network_id, credential.subject
        notices = [Notice(ADMIN_TOKEN_GENERATED, network, {
            "username": username, "tokenId": credential.jti,
            "issuedAt": iso(credential.issued_at), "expiresAt": iso(credential.expires_at),
            "actor": principal.user_id,
        })]
        for event in events:
            if isinstance(event, TokensSuperseded):
                notices.extend(
                    Notice(ADMIN_TOKEN_SUPERSEDED, network, {
                        "username": username, "tokenId": jti, "graceUntil": iso(until),
                        "actor": principal.user_id,
                    })
                    for jti, until in event.tokens
                )
        notices.extend(_revoked(network, username, principal, events))
        return notices

    return build


def admin_token_revoked(principal: Principal, username: str) -> Build:
    """`DELETE /api/v1/admin-token`: every live token of `username`, if it had any."""

    def build(events: Sequence[Event]) -> list[Notice]:
        return _revoked(principal.network_id, username, principal, events)

    return build


def _revoked(network_id: str, username: str, principal: Principal,
             events: Sequence[Event]) -> list[Notice]:
    tokens = [jti for event in events if isinstance(event, TokensRevoked)
              for jti, _exp in event.tokens]
    if not tokens:
        return []
    return [Notice(ADMIN_TOKEN_REVOKED, network_id, {
        "username": username, "tokenIds": tokens, "actor": principal.user_id,
    })]


def server_key_generated(principal: Principal) -> Build:
    def build(events: Sequence[Event]) -> list[Notice]:
        return [Notice(SERVER_KEY_GENERATED, principal.network_id, {"actor": principal.user_id})]

    return build


def certificate_added(principal: Principal, name: str) -> Build:
    def build(events: Sequence[Event]) -> list[Notice]:
        return [
            Notice(CERTIFICATE_ADDED, principal.network_id, {
                "name": name, "fingerprintSha256": event.fingerprint,
                "notAfter": iso(event.not_after), "actor": principal.user_id,
            })
            for event in events if isinstance(event, CertificateAdded)
        ]

    return build


def certificate_deleted(principal: Principal, certificate_id: str, name: str) -> Build:
    def build(events: Sequence[Event]) -> list[Notice]:
        return [
            Notice(CERTIFICATE_DELETED, principal.network_id, {
                "certificateId": certificate_id, "name": name,
                "fingerprintSha256": event.fingerprint, "actor": principal.user_id,
            })
            for event in events if isinstance(event, CertificateDeleted)
        ]

    return build


def network_switched(principal: Principal, *, secure: bool | None,
                     mtls: bool | None) -> Build:
    """`PUT /api/v3/networks/me`: the flags that changed (None: unchanged)."""

    def build(events: Sequence[Event]) -> list[Notice]:
        notices = []
        if secure is not None:
            notices.append(Notice(SECURE_MODE_SWITCHED, principal.network_id,
                                  {"enabled": secure, "actor": principal.user_id}))
        if mtls is not None:
            notices.append(Notice(MTLS_SWITCHED, principal.network_id,
                                  {"enabled": mtls, "actor": principal.user_id}))
        return notices

    return build


def grace_ending(network_id: str, username: str, jti: str, grace_until: float) -> Notice:
    return Notice(ADMIN_TOKEN_GRACE_ENDING, network_id,
                  {"username": username, "tokenId": jti, "graceUntil": iso(grace_until)},
                  key=f"{ADMIN_TOKEN_GRACE_ENDING}:{jti}")


def expiring(network_id: str, username: str, jti: str, expires_at: float) -> Notice:
    return Notice(ADMIN_TOKEN_EXPIRING, network_id,
                  {"username": username, "tokenId": jti, "expiresAt": iso(expires_at)},
                  key=f"{ADMIN_TOKEN_EXPIRING}:{jti}")


def webhook_test(principal: Principal, webhook_id: str) -> Notice:
    return Notice(WEBHOOK_TEST, principal.network_id,
                  {"webhookId": webhook_id, "actor": principal.user_id})

"""The store: the gateway's durable state, written once for both SQL backends."""

from __future__ import annotations

from gateway.store.audit import AuditQueries
from gateway.store.certificates import CertificateQueries
from gateway.store.credentials import ConsoleQueries, CredentialQueries
from gateway.store.identity import IdentityQueries
from gateway.store.login_limits import LoginLimitQueries
from gateway.store.settings import SettingsQueries
from gateway.store.webhooks import WebhookQueries


class Store(
    IdentityQueries,
    CredentialQueries,
    ConsoleQueries,
    CertificateQueries,
    SettingsQueries,
    AuditQueries,
    LoginLimitQueries,
    WebhookQueries,
):
    """Every query the gateway makes, grouped by area in the classes it combines."""

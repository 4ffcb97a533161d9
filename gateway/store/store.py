"""The store: the gateway's durable state, written once for both SQL backends."""

from __future__ import annotations

from gateway.store.credentials import CredentialQueries
from gateway.store.identity import IdentityQueries


class Store(IdentityQueries, CredentialQueries):
    """Every query the gateway makes, grouped by area in the classes it combines."""

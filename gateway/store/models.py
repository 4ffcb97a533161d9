"""Rows of the store as frozen dataclasses: what the rest of the gateway sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.store.events import Event, decode


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    region: str
    api_key: str
    use_secure_authentication: bool
    mtls_enabled: bool
    created_at: float
    admin_token_expires_hours: int | None = None


@dataclass(frozen=True)
class User:
    id: str  # the platform's `_id`
    network_id: str
    user_id: str
    display_name: str | None
    is_global_banned: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Admin:
    id: str
    network_id: str
    username: str
    role: str
    password_hash: str
    created_at: float


@dataclass(frozen=True)
class Certificate:
    """A client certificate the gateway CA signed for a network (mTLS)."""

    id: str
    network_id: str
    name: str
    certificate_pem: str
    fingerprint_sha256: str
    not_before: float
    not_after: float
    created_at: float


@dataclass(frozen=True)
class Change:
    """One entry of the ordered change feed."""

    seq: int
    kind: str
    network_id: str | None
    payload: dict[str, Any]
    created_at: float

    @property
    def event(self) -> Event | None:
        """The typed event (gateway.store.events); None for a kind unknown here."""
        return decode(self.kind, self.network_id, self.payload)

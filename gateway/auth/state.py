"""What token checks need beyond a valid signature, held in memory and fed by the change feed.

Loaded once from the store at start; afterwards every change arrives through the feed,
so a check never touches the database. Revoked token ids are kept only until the token
would have expired anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.store import Change
from gateway.store.events import (
    CertificateAdded,
    CertificateDeleted,
    ConsoleEnded,
    KeyRevoked,
    KeysRotated,
    NetworkChanged,
    TokensRevoked,
    TokensSuperseded,
    UserBanned,
    UserUnbanned,
)

# Revoked ids are kept this long past exp + leeway (when a check would answer "token
# expired" anyway): room for the prune and a check reading the clock at different times.
PRUNE_MARGIN = 60.0


@dataclass
class AuthState:
    clock: Callable[[], float] = time.time
    leeway: float = 30.0  # tokens.leeway: how long past exp a token is still accepted
    revoked: dict[str, float] = field(default_factory=dict)  # jti -> exp
    superseded: dict[str, float] = field(default_factory=dict)  # admin jti -> grace end
    banned: set[tuple[str, str]] = field(default_factory=set)  # (networkId, userId)
    ended_console_sessions: dict[str, float] = field(default_factory=dict)  # hash -> when
    # hash -> (networkId, username, role, expires_at, bound certificate or None), filled
    # from the store on first use
    console_sessions: dict[str, tuple[str, str, str, float, str | None]] = field(
        default_factory=dict)
    mtls_networks: set[str] = field(default_factory=set)  # networks with mTLS on
    # networkId -> {SHA-256 fingerprint -> notAfter}: the client certificates uploaded
    pinned_certificates: dict[str, dict[str, float]] = field(default_factory=dict)
    on_keys_rotated: Callable[[], None] | None = None
    on_key_revoked: Callable[[str], None] | None = None  # called with the revoked kid

    def is_revoked(self, jti: str) -> bool:
        return jti in self.revoked

    def is_banned(self, network_id: str, user_id: str) -> bool:
        return (network_id, user_id) in self.banned

    def requires_client_certificate(self, network_id: str) -> bool:
        return network_id in self.mtls_networks

    def pinned_until(self, network_id: str, fingerprint: str) -> float | None:
        """The notAfter of one of the network's uploaded certificates, else None."""
        return self.pinned_certificates.get(network_id, {}).get(fingerprint)

    def pin(self, network_id: str, fingerprint: str, not_after: float) -> None:
        self.pinned_certificates.setdefault(network_id, {})[fingerprint] = not_after

    def set_mtls(self, network_id: str, enabled: bool) -> None:
        if enabled:
            self.mtls_networks.add(network_id)
        else:
            self.mtls_networks.discard(network_id)

    def apply(self, change: Change) -> None:
        match change.event:
            case TokensRevoked(_, tokens):
                for jti, exp in tokens:
                    self.revoked[jti] = exp
                    self.superseded.pop(jti, None)
            case TokensSuperseded(_, tokens):
                for jti, grace_until in tokens:
                    self.superseded[jti] = grace_until
            case UserBanned(network_id, user_id):
                self.banned.add((network_id, user_id))
            case UserUnbanned(network_id, user_id):
                self.banned.discard((network_id, user_id))
            case ConsoleEnded(_, sessions):
                for session in sessions:
                    self.ended_console_sessions[session] = self.clock()
                    self.console_sessions.pop(session, None)
            case NetworkChanged(network_id, _, mtls):
                self.set_mtls(network_id, mtls)
            case CertificateAdded(network_id, fingerprint, not_after):
                self.pin(network_id, fingerprint, not_after)
            case CertificateDeleted(network_id, fingerprint):
                self.pinned_certificates.get(network_id, {}).pop(fingerprint, None)
            case KeysRotated():
                if self.on_keys_rotated is not None:
                    self.on_keys_rotated()
            case KeyRevoked(kid, _):
                if self.on_key_revoked is not None:  # first: refused from this entry on
                    self.on_key_revoked(kid)
                if self.on_keys_rotated is not None:  # then the replacement signer is loaded
                    self.on_keys_rotated()

    def prune(self) -> int:
        """Forget revocations of tokens that have expired anyway; return how many."""
        now = self.clock()
        # Until exp + leeway a revoked token would otherwise be accepted again.
        keep_after = now - self.leeway - PRUNE_MARGIN
        spent = [jti for jti, exp in self.revoked.items() if exp < keep_after]
        for jti in spent:
            del self.revoked[jti]
        # Console sessions live 12 h by default; a day later an ended one cannot matter.
        old = [h for h, when in self.ended_console_sessions.items() if when < now - 86400]
        for session in old:
            del self.ended_console_sessions[session]
        gone = [h for h, session in self.console_sessions.items() if session[3] < now]
        for session in gone:
            del self.console_sessions[session]
        return len(spent)

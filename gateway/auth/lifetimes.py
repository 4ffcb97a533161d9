"""The longest lifetime (`exp - iat`) the gateway gives each kind of token.

A token that claims a longer life was not issued here: it was forged, for instance
backdated with a retired key (so that it passes the retirement check) and given an `exp`
years ahead. Token decoding refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import TokensConfig
from gateway.store import Network

# The API's upper bound on a network's securityConfigs.adminToken.expiresInHours.
NETWORK_ADMIN_TOKEN_MAX_HOURS = 87600


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Upper bounds by kind; the defaults are those of the default configuration."""

    access: float = 30 * 86400.0
    admin: float = NETWORK_ADMIN_TOKEN_MAX_HOURS * 3600.0

    def of(self, kind: str) -> float:
        return self.admin if kind == "admin" else self.access

    @classmethod
    def from_config(cls, tokens: TokensConfig) -> Lifetimes:
        # Access tokens live access_ttl_secure or access_ttl_unsecure (the network's mode
        # at login, which may have changed since): the larger of the two.
        access = max(tokens.access_ttl_unsecure, tokens.access_ttl_secure)
        # A network may change expiresInHours at any time, and a token issued under an
        # earlier, larger value stays valid, so the network's current value is no bound.
        # The largest lifetime any issuing path can give is: the API's cap on that setting,
        # or tokens.admin_token_ttl (used when a network has no setting) if larger.
        admin = max(NETWORK_ADMIN_TOKEN_MAX_HOURS * 3600.0, tokens.admin_token_ttl)
        return cls(access=access, admin=admin)


def issued_lifetime(tokens: TokensConfig, network: Network, kind: str) -> float:
    """The lifetime a new token of `kind` gets in `network`, whoever issues it (the API,
    console login, the CLI): access tokens by the network's mode, admin tokens by its
    securityConfigs.adminToken.expiresInHours when set, else the configured default."""
    if kind == "admin":
        if network.admin_token_expires_hours:
            return network.admin_token_expires_hours * 3600.0
        return float(tokens.admin_token_ttl)
    return float(tokens.access_ttl_secure if network.use_secure_authentication
                 else tokens.access_ttl_unsecure)

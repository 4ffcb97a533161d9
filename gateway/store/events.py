"""The change feed's events, one dataclass per kind, with their encoding in one place.

Writers append an event (`Store.append_change(tx, event)`); subscribers receive the
decoded event and dispatch on its type. The stored form (kind, network id, JSON
payload) is unchanged from the untyped feed, so entries written by older versions
decode too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TokensRevoked:
    network_id: str | None
    tokens: tuple[tuple[str, float], ...]  # (jti, exp): kept until the token expires


@dataclass(frozen=True, slots=True)
class TokensSuperseded:
    network_id: str | None
    tokens: tuple[tuple[str, float], ...]  # (jti, end of its grace)


@dataclass(frozen=True, slots=True)
class UserBanned:
    network_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class UserUnbanned:
    network_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ConsoleEnded:
    network_id: str | None
    sessions: tuple[str, ...]  # stored hashes of the cookies


@dataclass(frozen=True, slots=True)
class NetworkChanged:
    """A network created (`created`) or its secure-mode / mTLS flags updated."""

    network_id: str
    secure: bool
    mtls: bool
    created: bool = False
    region: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateAdded:
    network_id: str
    fingerprint: str
    not_after: float


@dataclass(frozen=True, slots=True)
class CertificateDeleted:
    network_id: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class KeysRotated:
    kid: str


@dataclass(frozen=True, slots=True)
class KeyRevoked:
    kid: str
    signer: str | None  # the signing key made to replace it, if it was the signer


@dataclass(frozen=True, slots=True)
class SettingUpdated:
    network_id: str | None
    name: str


Event = (
    TokensRevoked | TokensSuperseded | UserBanned | UserUnbanned | ConsoleEnded
    | NetworkChanged | CertificateAdded | CertificateDeleted | KeysRotated | KeyRevoked
    | SettingUpdated
)


def encode(event: Event) -> tuple[str, str | None, Payload]:
    """(kind, network id, payload) as stored."""
    match event:
        case TokensRevoked(network_id, tokens):
            return "tokens.revoked", network_id, {"tokens": [list(t) for t in tokens]}
        case TokensSuperseded(network_id, tokens):
            return "tokens.superseded", network_id, {"tokens": [list(t) for t in tokens]}
        case UserBanned(network_id, user_id):
            return "user.banned", network_id, {"userId": user_id}
        case UserUnbanned(network_id, user_id):
            return "user.unbanned", network_id, {"userId": user_id}
        case ConsoleEnded(network_id, sessions):
            return "console.ended", network_id, {"sessions": list(sessions)}
        case NetworkChanged(network_id, secure, mtls, created, region):
            if created:
                return "network.created", network_id, {"region": region, "secure": secure,
                                                        "mtls": mtls}
            return "network.updated", network_id, {"secure": secure, "mtls": mtls}
        case CertificateAdded(network_id, fingerprint, not_after):
            return "certificate.added", network_id, {"fingerprint": fingerprint,
                                                     "notAfter": not_after}
        case CertificateDeleted(network_id, fingerprint):
            return "certificate.deleted", network_id, {"fingerprint": fingerprint}
        case KeysRotated(kid):
            return "keys.rotated", None, {"kid": kid}
        case KeyRevoked(kid, signer):
            return "keys.revoked", None, {"kid": kid, "signer": signer}
        case SettingUpdated(network_id, name):
            return "setting.updated", network_id, {"name": name}
    raise TypeError(f"not a feed event: {event!r}")  # pragma: no cover


def decode(kind: str, network_id: str | None, payload: Payload) -> Event | None:
    """The event a stored entry holds; None for a kind this version does not know (an
    entry written by a newer version is skipped, not fatal)."""
    match kind:
        case "tokens.revoked":
            return TokensRevoked(network_id, _pairs(payload["tokens"]))
        case "tokens.superseded":
            return TokensSuperseded(network_id, _pairs(payload["tokens"]))
        case "user.banned" if network_id:
            return UserBanned(network_id, str(payload["userId"]))
        case "user.unbanned" if network_id:
            return UserUnbanned(network_id, str(payload["userId"]))
        case "console.ended":
            return ConsoleEnded(network_id, tuple(str(s) for s in payload["sessions"]))
        case "network.created" | "network.updated" if network_id:
            return NetworkChanged(network_id, bool(payload.get("secure")),
                                  bool(payload.get("mtls")), kind == "network.created",
                                  payload.get("region"))
        case "certificate.added" if network_id:
            return CertificateAdded(network_id, str(payload["fingerprint"]),
                                    float(payload["notAfter"]))
        case "certificate.deleted" if network_id:
            return CertificateDeleted(network_id, str(payload["fingerprint"]))
        case "keys.rotated":
            return KeysRotated(str(payload.get("kid", "")))
        case "keys.revoked":
            signer = payload.get("signer")
            return KeyRevoked(str(payload["kid"]), str(signer) if signer else None)
        case "setting.updated":
            return SettingUpdated(network_id, str(payload.get("name", "")))
    return None


def _pairs(items: list[list[Any]]) -> tuple[tuple[str, float], ...]:
    return tuple((str(jti), float(when)) for jti, when in items)

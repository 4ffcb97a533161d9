"""Low-S ECDSA for JWS: one signature string per token, never two.

An ECDSA signature (r, s) has a twin (r, n - s) that verifies just as well. OpenSSL
returns either, and pyjwt accepts both, so anyone holding a token could make a second,
different string for it (a fresh cache key, a token that slips past an exact-match deny
list or log search). The gateway signs with the low half only (s <= n/2) and refuses the
high one. EdDSA needs no such rule: OpenSSL already refuses a non-canonical Ed25519 S.
"""

from __future__ import annotations

from typing import Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from jwt.algorithms import ECAlgorithm
from jwt.utils import base64url_decode

# The group order n of each curve, by the JWS algorithm that uses it (RFC 7518 3.4).
ORDERS: Final = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973", 16),
    "ES512": int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA"
        "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16),
}
_BY_CURVE: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def _width(order: int) -> int:
    """Bytes of r and of s in a raw JWS signature (RFC 7518 3.4): 32, 48, 66."""
    return (order.bit_length() + 7) // 8


def is_high_s(algorithm: str, signature: bytes) -> bool:
    """Whether a raw JWS signature (r || s) is the high-S twin. Other shapes answer False:
    the signature check refuses them anyway."""
    order = ORDERS.get(algorithm)
    if order is None or len(signature) != 2 * _width(order):
        return False
    return int.from_bytes(signature[len(signature) // 2:], "big") > order // 2


def to_low_s(algorithm: str, signature: bytes) -> bytes:
    """The low-S form of a raw signature; unchanged when it already is one."""
    if not is_high_s(algorithm, signature):
        return signature
    half = len(signature) // 2
    s = int.from_bytes(signature[half:], "big")
    return signature[:half] + (ORDERS[algorithm] - s).to_bytes(half, "big")


def token_is_high_s(algorithm: str, token: str) -> bool:
    """Whether a compact JWS carries a high-S ECDSA signature."""
    try:  # decoded exactly as pyjwt decodes it, so both look at the same bytes
        signature = base64url_decode(token.rpartition(".")[2])
    except ValueError:  # not base64: the signature check refuses it
        return False
    return is_high_s(algorithm, signature)


class LowSECAlgorithm(ECAlgorithm):
    """pyjwt's ECDSA algorithm, signing low-S only."""

    def sign(self, msg: bytes, key: EllipticCurvePrivateKey) -> bytes:
        signature = super().sign(msg, key)
        algorithm = _BY_CURVE.get(key.curve.name)
        return signature if algorithm is None else to_low_s(algorithm, signature)


def install_low_s_signing() -> None:
    """Make pyjwt's ES256/ES384/ES512 (the registry `jwt.encode` signs with) emit low-S
    signatures only, whoever in this process signs. Safe to call again."""
    for name in ORDERS:
        current = jwt.get_algorithm_by_name(name)
        if isinstance(current, LowSECAlgorithm) or not isinstance(current, ECAlgorithm):
            continue
        jwt.unregister_algorithm(name)
        jwt.register_algorithm(name, LowSECAlgorithm(current.hash_alg, current.expected_curve))

"""The signing key ring every worker and instance shares through the store.

Private halves are stored sealed with the key-encryption key. The newest key that is
not retired signs; every key verifies until the last token it signed has expired
(`max_exp`, raised whenever it signs), after which it leaves the ring and JWKS. A revoked
key leaves at once and for good: it neither signs nor verifies again.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.sealing import Sealer
from gateway.store import NewSigningKey, Store

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    public_key: PublicKey
    private_key: PrivateKey
    created_at: float
    retired_at: float | None
    max_exp: float


def generate_private_key(algorithm: str) -> PrivateKey:
    """Blocking for RSA (tens of ms): run it in a thread."""
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_key_material(algorithm: str, sealer: Sealer) -> tuple[str, str, str]:
    """(kid, public PEM, sealed private PEM) for a fresh key."""
    private = generate_private_key(algorithm)
    kid = secrets.token_hex(8)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return kid, public_pem, sealer.seal(private_pem, f"signing-key:{kid}")


class KeyRing:
    def __init__(
        self, store: Store, sealer: Sealer, algorithm: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._sealer = sealer
        self.algorithm = algorithm
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._signer: SigningKey | None = None
        self._revoked: set[str] = set()  # kids this process was told are revoked

    async def ensure_signing_key(self) -> None:
        """Create the first key if the store has none that may sign."""
        kid, public_pem, sealed = await asyncio.to_thread(
            new_key_material, self.algorithm, self._sealer
        )
        await self._store.add_signing_key(kid, self.algorithm, public_pem, sealed, rotate=False)
        await self.load()

    async def rotate(self) -> str:
        kid, public_pem, sealed = await asyncio.to_thread(
            new_key_material, self.algorithm, self._sealer
        )
        await self._store.add_signing_key(kid, self.algorithm, public_pem, sealed, rotate=True)
        await self.load()
        return kid

    async def revoke(self, kid: str, actor: str) -> tuple[float, str | None]:
        """Revoke `kid`; (when, the kid of the key made to replace it, if one was needed)."""
        new_kid, public_pem, sealed = await asyncio.to_thread(
            new_key_material, self.algorithm, self._sealer
        )
        replacement = NewSigningKey(new_kid, self.algorithm, public_pem, sealed)
        revoked_at, added = await self._store.revoke_signing_key(kid, replacement, actor)
        self.forget(kid)
        await self.load()
        return revoked_at, added

    def forget(self, kid: str) -> None:
        """Drop a revoked key now, before the reload that fetches its replacement: nothing
        it signed verifies from this moment, and a load already under way (which may have
        read the key before the revocation) cannot bring it back."""
        self._revoked.add(kid)
        self._keys.pop(kid, None)
        if self._signer is not None and self._signer.kid == kid:
            self._signer = None

    async def load(self) -> None:
        rows = await self._store.signing_keys()
        keys = await asyncio.to_thread(self._open_all, rows)
        for kid in self._revoked & keys.keys():
            del keys[kid]
        signers = [key for key in keys.values() if key.retired_at is None]
        self._keys = keys
        self._signer = max(signers, key=lambda key: key.created_at) if signers else None

    def _open_all(self, rows: list[dict[str, Any]]) -> dict[str, SigningKey]:
        keys = {}
        for row in rows:
            pem = self._sealer.unseal(row["sealed_private"], f"signing-key:{row['kid']}")
            private = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(private, PrivateKey)
            keys[row["kid"]] = SigningKey(
                kid=row["kid"],
                algorithm=row["algorithm"],
                public_key=private.public_key(),
                private_key=private,
                created_at=float(row["created_at"]),
                retired_at=None if row["retired_at"] is None else float(row["retired_at"]),
                max_exp=float(row["max_exp"]),
            )
        return keys

    @property
    def loaded(self) -> bool:
        return self._signer is not None

    def signer(self) -> SigningKey:
        if self._signer is None:
            raise RuntimeError("no signing key loaded")
        return self._signer

    def verifier(self, kid: object) -> SigningKey | None:
        """The key for `kid` if it may still verify: current, or retired but not spent."""
        if not isinstance(kid, str):
            return None
        key = self._keys.get(kid)
        if key is None or (key.retired_at is not None and key.max_exp < self._clock()):
            return None
        return key

    def note_signed(self, kid: str, exp: float) -> None:
        """Keep a retired key's lifetime in step with a token this process just signed."""
        key = self._keys.get(kid)
        if key is not None and exp > key.max_exp:
            self._keys[kid] = SigningKey(**{**key.__dict__, "max_exp": exp})

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        live = [key for key in self._keys.values() if self.verifier(key.kid) is not None]
        return {"keys": [_public_jwk(key) for key in live]}


def _public_jwk(key: SigningKey) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key))
    jwk.update({"kid": key.kid, "alg": key.algorithm, "use": "sig"})
    return jwk

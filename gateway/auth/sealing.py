"""Encryption at rest with the key-encryption key (AES-256-GCM).

The KEK comes from `GATEWAY_KEK` (base64url, 32 bytes) when set, else from the file
`gateway init` writes under `tokens.signing_keys`. Each sealed value carries its own
random nonce; `purpose` is bound as associated data, so a value sealed for one use
(a signing key `kid`, an admin token id) cannot be swapped in for another.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK_ENV = "GATEWAY_KEK"
_NONCE = 12


class SealError(ValueError):
    """A sealed value that cannot be opened: wrong KEK, tampered or malformed."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SealError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_file_or_env(cls, path: Path) -> Sealer:
        """Blocking (reads a file): call at start-up."""
        text = os.environ.get(KEK_ENV) or path.read_text(encoding="utf-8")
        try:
            return cls(base64.urlsafe_b64decode(_padded(text.strip())))
        except (binascii.Error, ValueError) as exc:
            raise SealError(f"the key-encryption key in {path} is not base64url: {exc}") from None

    def seal(self, plaintext: bytes, purpose: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def unseal(self, sealed: str, purpose: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(sealed)
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode())
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise SealError(f"cannot open sealed value for {purpose}") from exc


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)

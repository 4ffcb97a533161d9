"""How random secrets (server keys, auth tokens) are stored: by their SHA-256."""

from __future__ import annotations

import hashlib


def hash_secret(secret: str) -> str:
    """Server keys and auth tokens are random 256-bit secrets: SHA-256 is enough to store."""
    return hashlib.sha256(secret.encode()).hexdigest()

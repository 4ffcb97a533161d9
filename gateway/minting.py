"""Token signing for `gateway tokens mint`, run in worker processes.

Signing is most of a mint's time and holds the GIL, so it runs in processes; a worker
needs only the key's PEM and the chunk's parameters.
Tokens are the ones `TokenService.issue` makes (same header, claims and signature);
the JWS is assembled here rather than by `jwt.encode`, which costs as much again as
the signature itself.
"""

from __future__ import annotations

import base64
import json
import secrets
import signal
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from jwt.algorithms import Algorithm


@dataclass(frozen=True)
class MintChunk:
    """Users `start` .. `start + count - 1`, signed with one key at one issue time."""

    pem: bytes
    issuer: str
    algorithm: str
    kid: str
    kind: str
    network_id: str
    issued: float
    ttl: float
    start: int
    count: int


def user_id(kind: str, index: int) -> str:
    return f"loadtest-{kind}-{index}"


def device_id(kind: str, index: int) -> str | None:
    return f"loadtest-device-{index}" if kind == "access" else None


@lru_cache(maxsize=4)
def _signer(pem: bytes, algorithm: str) -> tuple[Algorithm, Any]:
    """Parsing the PEM costs more than a signature: once per key and process."""
    algo = jwt.get_algorithm_by_name(algorithm)
    return algo, algo.prepare_key(pem)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign_chunk(chunk: MintChunk) -> list[tuple[str, str]]:
    """(jti, token) for each user of the chunk, in order."""
    algo, key = _signer(chunk.pem, chunk.algorithm)
    # PyJWT's header: sorted keys, compact separators.
    header = _b64(_json({"alg": chunk.algorithm, "kid": chunk.kid, "typ": "JWT"}))
    iat, exp = int(chunk.issued), int(chunk.issued + chunk.ttl)
    role = "admin" if chunk.kind == "admin" else None
    signed: list[tuple[str, str]] = []
    for index in range(chunk.start, chunk.start + chunk.count):
        jti = secrets.token_hex(16)
        claims: dict[str, Any] = {
            "iss": chunk.issuer, "sub": user_id(chunk.kind, index), "iat": iat, "exp": exp,
            "jti": jti, "nid": chunk.network_id, "kind": chunk.kind,
        }
        device = device_id(chunk.kind, index)
        if device is not None:
            claims["did"] = device
        if role is not None:
            claims["role"] = role
        message = header + b"." + _b64(_json(claims))
        token = message + b"." + _b64(algo.sign(message, key))
        signed.append((jti, token.decode()))
    return signed


def start_worker() -> None:
    """Initializer of a signing process."""
    # Ctrl-C reaches the whole process group; the parent alone handles it (and shuts
    # the pool down), so workers print no tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The token service's module may set how pyjwt signs (its algorithm registry):
    # a worker must sign exactly as the gateway does.
    import gateway.auth.tokens  # noqa: F401

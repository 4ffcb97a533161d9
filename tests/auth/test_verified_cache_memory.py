"""What the verified-token cache holds for each token, measured with tracemalloc.

Real tokens, minted by the gateway's own TokenService: one network, distinct users,
devices and ids, issued seconds apart (so no two share an `iat` or `exp`). Each token is
cached the way TokenService.decode caches it, from a string of its own (a request's
header gives a new one each time), which is then dropped: what remains is what the
cache keeps.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import base64url_decode

from gateway.auth.keyring import KeyRing, SigningKey
from gateway.auth.state import AuthState
from gateway.auth.tokens import HOT_ENTRIES, TokenService, VerifiedCache, _claims
from gateway.store.core import new_id

ENTRIES = 20_000
BUDGET = 300  # bytes an entry
LEEWAY = 30.0


def _service(now: float) -> TokenService:
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(kid=new_id()[:16], algorithm="ES256", public_key=private.public_key(),
                     private_key=private, created_at=now - 10, retired_at=None,
                     max_exp=now + 86400)
    ring = KeyRing(cast(Any, None), cast(Any, None), "ES256")
    ring._keys = {key.kid: key}
    ring._signer = key
    return TokenService(ring, AuthState(), cast(Any, None), algorithms=("ES256",),
                        leeway=LEEWAY, clock=lambda: now)


async def _mint(service: TokenService, count: int, now: float) -> list[str]:
    network = new_id()
    tokens = []
    for i in range(count):
        token, _ = await service.issue(
            kind="access", network_id=network, subject=f"user-{i:06d}",
            device_id=f"device-{i:06d}", ttl=86400, now=now - 3 * i - 1,
        )
        tokens.append(token)
    return tokens


def _presented(token: str) -> str:
    return (token + " ")[:-1]  # the same text in a string of its own


def test_an_entry_costs_at_most_300_bytes() -> None:
    now = time.time()
    service = _service(now)
    tokens = asyncio.run(_mint(service, ENTRIES, now))
    kid = service.ring.signer().kid
    cache = VerifiedCache(clock=lambda: now)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens:
            # What TokenService.decode does on a miss but check the signature and the
            # header (they keep nothing, and 20,000 checks take seconds): the claims are
            # built by the same code from the same JSON.
            presented = _presented(token)
            payload = json.loads(base64url_decode(presented.split(".")[1]))
            claims = _claims(payload, kid, None)
            cache.put(presented, claims, claims.exp + LEEWAY)
        for token in tokens[-HOT_ENTRIES:]:  # used again: the hot tier full, the worst case
            assert cache.get(_presented(token)) is not None
        del presented, payload, claims
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == ENTRIES
    assert held / ENTRIES <= BUDGET, f"{held / ENTRIES:.0f} bytes an entry"
    # The claims came back as put (the measure is of a cache that works).
    first = service._decode(tokens[0])
    assert cache.get(_presented(tokens[0])) == first

"""The verified-token cache: bounded, and never answers past a token's expiry."""

from __future__ import annotations

from gateway.auth.tokens import Claims, VerifiedCache
from gateway.testing.support import Clock


def _claims(jti: str, exp: float) -> Claims:
    return Claims(sub="u", nid="n", kind="access", jti=jti, iat=0, exp=exp, kid="k")


def test_entries_stop_at_their_expiry() -> None:
    clock = Clock()
    cache = VerifiedCache(clock=clock)
    cache.put("t", _claims("a", clock.now + 10), clock.now + 10)
    assert cache.get("t") is not None
    clock.advance(11)
    assert cache.get("t") is None and len(cache) == 0
    cache.put("late", _claims("b", clock.now - 1), clock.now - 1)  # already spent: not kept
    assert len(cache) == 0


def test_the_cache_never_grows_past_its_bound() -> None:
    clock = Clock()
    cache = VerifiedCache(max_entries=100, clock=clock)
    for i in range(50):
        cache.put(f"short{i}", _claims(f"s{i}", clock.now + 1), clock.now + 1)
    for i in range(1000):
        cache.put(f"long{i}", _claims(f"l{i}", clock.now + 100), clock.now + 100)
        assert len(cache) <= 100
        if i == 60:
            clock.advance(2)  # the short-lived entries are the first to go
    assert cache.get("long999") is not None


def test_prune_drops_only_expired_entries() -> None:
    clock = Clock()
    cache = VerifiedCache(clock=clock)
    for i in range(10):
        cache.put(f"short{i}", _claims(f"s{i}", clock.now + 5), clock.now + 5)
        cache.put(f"long{i}", _claims(f"l{i}", clock.now + 500), clock.now + 500)
    clock.advance(10)
    assert cache.prune() == 10 and len(cache) == 10
    assert cache.get("long3") is not None

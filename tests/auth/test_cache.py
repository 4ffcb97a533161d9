"""The verified-token cache: bounded, and never answers past a token's expiry."""

from __future__ import annotations

from gateway.auth.tokens import HOT_ENTRIES, Claims, VerifiedCache
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


def _cold(cache: VerifiedCache, clock: Clock) -> None:
    """Push every entry out of the hot tier: what follows reads packed entries."""
    for i in range(HOT_ENTRIES):
        cache.put(f"filler{i}", _claims(f"f{i}", clock.now + 1000), clock.now + 1000)


def test_a_packed_entry_gives_back_the_claims_it_was_given() -> None:
    clock = Clock()
    cache = VerifiedCache(clock=clock)
    plain = Claims(sub="alice", nid="net-1", kind="access", jti="0f" * 16, iat=clock.now - 5,
                   exp=clock.now + 3600.5, kid="k1", did="dev-1", iss="gateway")
    full = Claims(sub="é\U0001f600\ud800", nid="net-2", kind="admin", jti="j", iat=0,
                  exp=clock.now + 60, kid="k2", did="", role="owner", iss=None,
                  cert_sha256="ab" * 32)
    bare = Claims(sub="s", nid="net-1", kind="access", jti="x" * 256, iat=1.25, exp=2e9,
                  kid="k1")
    for token, claims in (("plain", plain), ("full", full), ("bare", bare)):
        cache.put(token, claims, claims.exp + 30)
    _cold(cache, clock)
    for token, claims in (("plain", plain), ("full", full), ("bare", bare)):
        assert cache.get(token) == claims
        assert cache.get(token) == claims  # hot again
    assert cache.get("plai") is None and cache.get("plainx") is None
    assert cache.get("\udcff") is None  # a header's undecodable byte: no entry, no error


def test_packed_entries_stop_at_their_expiry() -> None:
    clock = Clock()
    cache = VerifiedCache(clock=clock)
    cache.put("t", _claims("a", clock.now + 10), clock.now + 10)
    _cold(cache, clock)
    clock.advance(10)
    assert cache.get("t") is not None  # until itself is still good
    clock.advance(1)
    assert cache.get("t") is None and len(cache) == HOT_ENTRIES


def test_clearing_forgets_both_tiers() -> None:
    clock = Clock()
    cache = VerifiedCache(clock=clock)
    cache.put("old", _claims("o", clock.now + 100), clock.now + 100)
    _cold(cache, clock)
    cache.put("new", _claims("n", clock.now + 100), clock.now + 100)
    cache.clear()
    assert cache.get("old") is None and cache.get("new") is None and len(cache) == 0
    cache.put("again", _claims("g", clock.now + 100), clock.now + 100)
    assert cache.get("again") == _claims("g", clock.now + 100)


def test_prune_forgets_the_shared_fields_of_expired_entries() -> None:
    clock = Clock()
    cache = VerifiedCache(clock=clock)

    def claims(i: int, exp: float) -> Claims:
        return Claims(sub=f"u{i}", nid=f"net-{i}", kind="access", jti=f"j{i}", iat=0, exp=exp,
                      kid="k")

    for i in range(1500):  # one network each; the 10 long-lived ones numbered in the middle
        exp = clock.now + (100 if 700 <= i < 710 else 10)
        cache.put(f"t{i}", claims(i, exp), exp)
    clock.advance(20)
    assert cache.prune() == 1490
    assert len(cache._contexts) == 10
    for i in range(700, 710):
        assert cache.get(f"t{i}") == claims(i, clock.now + 80)
    cache.put("later", claims(703, clock.now + 50), clock.now + 50)  # a known network
    cache.put("other", claims(9999, clock.now + 50), clock.now + 50)
    assert len(cache._contexts) == 11
    _cold(cache, clock)
    assert cache.get("later") == claims(703, clock.now + 50)
    assert cache.get("other") == claims(9999, clock.now + 50)
    assert cache.get("t705") == claims(705, clock.now + 80)

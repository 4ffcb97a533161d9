"""Every write transaction of a request checks first that the credential it acts with is
still live (gateway/store/acting.py); a revoke ends an admin's tokens and console
sessions together (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store import Caller, CallerNotLive, Store
from gateway.store.acting import ACTING, token_live
from gateway.store.credentials import IssuedCredential, NewSigningKey
from gateway.store.events import ConsoleEnded, TokensRevoked


def _admin_token(jti: str, network_id: str) -> IssuedCredential:
    return IssuedCredential(jti=jti, kind="admin", network_id=network_id, subject="ada",
                            issued_at=0.0, expires_at=4e9, kid="k1")


async def _ada(store: Store) -> str:
    """A network where ada holds admin token "old" (current) and "superseded" (in its
    grace window), had "gone" revoked, and has console sessions "s-open" and "s-ended"; the
network's server key hashes to "key-hash" (it was "replaced-key-hash"); signing key
"k1" signs, "k-revoked" is revoked."""
    network = await store.create_network("acme", "sg", secure=False)
    await store.rotate_admin_token(_admin_token("gone", network.id), 0)
    await store.revoke_token(network.id, "gone")
    await store.rotate_admin_token(_admin_token("superseded", network.id), 0)
    await store.rotate_admin_token(_admin_token("old", network.id), 3600)
    await store.create_console_session("s-open", network.id, "ada", "admin", 4e9)
    await store.create_console_session("s-ended", network.id, "ada", "admin", 4e9)
    await store.end_console_session("s-ended")
    await store.set_server_key_hash(network.id, "replaced-key-hash", "ada")
    await store.set_server_key_hash(network.id, "key-hash", "ada")
    await store.add_signing_key("k-revoked", "ES256", "PEM", "sealed", rotate=True)
    await store.add_signing_key("k1", "ES256", "PEM", "sealed", rotate=True)
    await store.revoke_signing_key(
        "k-revoked", NewSigningKey("k-spare", "ES256", "PEM", "sealed"), "ada")
    return network.id


def _caller(store: Store, **who: Any) -> Caller:
    """The caller of a request running in this task."""
    return Caller(store.clock, asyncio.current_task(), **who)


@pytest.mark.parametrize(("who", "live"), [
    pytest.param({"token_id": "old", "kid": "k1"}, True, id="current-token"),
    # Every token handed out is recorded first: one that is not is forged.
    pytest.param({"token_id": "never-recorded"}, False, id="unrecorded-token"),
    pytest.param({"token_id": "old", "kid": "k-revoked"}, False, id="signing-key-revoked"),
    pytest.param({"token_id": "gone"}, False, id="revoked-token"),
    pytest.param({"token_id": "superseded"}, True, id="token-in-grace"),
    pytest.param({"token_id": "superseded", "allow_superseded": False}, False,
                 id="token-in-grace-on-a-rule-refusing-it"),
    pytest.param({"session_id": "s-open"}, True, id="open-session"),
    pytest.param({"session_id": "s-ended"}, False, id="ended-session"),
    pytest.param({"session_id": "s-unknown"}, False, id="unknown-session"),
    pytest.param({"server_key_hash": "key-hash"}, True, id="current-server-key"),
    pytest.param({"server_key_hash": "replaced-key-hash"}, False, id="replaced-server-key"),
])
async def test_a_write_made_for_a_caller(store: Store, who: dict[str, Any], live: bool
                                         ) -> None:
    network_id = await _ada(store)
    current = await store.current_admin_token(network_id, "ada")
    assert current is not None and current["jti"] == "old"
    seq = await store.latest_seq()
    new = _admin_token("new", network_id)
    acting = ACTING.set(_caller(store, **who))
    try:
        if live:
            await store.rotate_admin_token(new, 3600)
            await store.confirm_acting()
        else:
            with pytest.raises(CallerNotLive):
                await store.rotate_admin_token(new, 3600)
            with pytest.raises(CallerNotLive):
                await store.confirm_acting()
    finally:
        ACTING.reset(acting)
    if live:
        assert (await store.current_admin_token(network_id, "ada") or {})["jti"] == "new"
    else:
        assert await store.current_admin_token(network_id, "ada") == current  # nothing made
        assert await store.changes_since(seq) == []  # nor put on the feed


async def test_tasks_a_request_starts_write_as_themselves(store: Store) -> None:
    """A task started during a request inherits its context variables; its writes are
    not the request's (a background job), so the caller is not checked for them."""
    network_id = await _ada(store)
    acting = ACTING.set(_caller(store, token_id="gone"))  # a revoked token
    try:
        started = asyncio.create_task(
            store.rotate_admin_token(_admin_token("new", network_id), 3600))
        await started
        with pytest.raises(CallerNotLive):  # the request's own writes are
            await store.revoke_admin(network_id, "ada")
    finally:
        ACTING.reset(acting)
    assert (await store.current_admin_token(network_id, "ada") or {})["jti"] == "new"


async def test_a_caller_may_end_its_own_credential(store: Store) -> None:
    """The check comes before the writes: revoking oneself is not refused halfway."""
    network_id = await _ada(store)
    acting = ACTING.set(_caller(store, token_id="old"))
    try:
        await store.revoke_admin(network_id, "ada")
        with pytest.raises(CallerNotLive):  # and the request can change nothing after
            await store.rotate_admin_token(_admin_token("new", network_id), 3600)
    finally:
        ACTING.reset(acting)
    assert await store.current_admin_token(network_id, "ada") is None


NOW = 1000.0
LEEWAY = 30.0


@pytest.mark.parametrize(("revoked_at", "grace_until", "expires_at", "allow", "live"), [
    (None, None, NOW + 1, True, True),
    (NOW - 5, None, NOW + 1, True, False),  # revoked
    (None, None, NOW - LEEWAY, True, True),  # expired, within the gate's leeway
    (None, None, NOW - LEEWAY - 1, True, False),  # past it
    (None, NOW + 1, NOW + 2, True, True),  # in grace, where the rule admits it
    (None, NOW + 1, NOW + 2, False, False),  # in grace, where the rule does not
    (None, NOW, NOW + 2, True, True),  # the grace's last moment, as the gate counts it
    (None, NOW - 1, NOW + 2, True, False),  # grace over
])
def test_token_live(revoked_at: float | None, grace_until: float | None, expires_at: float,
                    allow: bool, live: bool) -> None:
    assert token_live(revoked_at, grace_until, expires_at, NOW, allow_superseded=allow,
                      leeway=LEEWAY) is live


async def test_revoking_an_admin_ends_their_tokens_and_console_sessions_together(
    store: Store,
) -> None:
    network_id = await _ada(store)
    seq = await store.latest_seq()
    await store.revoke_admin(network_id, "ada")
    events = [change.event for change in await store.changes_since(seq)]
    assert [type(event) for event in events] == [TokensRevoked, ConsoleEnded]
    revoked, ended = events
    assert isinstance(revoked, TokensRevoked) and isinstance(ended, ConsoleEnded)
    assert sorted(jti for jti, _ in revoked.tokens) == ["old", "superseded"]
    assert ended.sessions == ("s-open",)
    assert await store.current_admin_token(network_id, "ada") is None
    assert await store.console_session("s-open") is None

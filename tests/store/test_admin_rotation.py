"""A rotation checks, in its own transaction, that the credential asking for it is still
live; a revoke ends tokens and console sessions together (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from gateway.store import Caller, CallerNotLive, Store
from gateway.store.credentials import IssuedCredential
from gateway.store.events import ConsoleEnded, TokensRevoked


def _admin_token(jti: str, network_id: str) -> IssuedCredential:
    return IssuedCredential(jti=jti, kind="admin", network_id=network_id, subject="ada",
                            issued_at=0.0, expires_at=4e9, kid="k1")


async def _ada(store: Store) -> str:
    """A network where ada holds admin token "old" (current) and "superseded" (in its
    grace window), had "gone" revoked, and has console sessions "s-open" and "s-ended"."""
    network = await store.create_network("acme", "sg", secure=False)
    await store.rotate_admin_token(_admin_token("gone", network.id), 0)
    await store.revoke_token(network.id, "gone")
    await store.rotate_admin_token(_admin_token("superseded", network.id), 0)
    await store.rotate_admin_token(_admin_token("old", network.id), 3600)
    await store.create_console_session("s-open", network.id, "ada", "admin", 4e9)
    await store.create_console_session("s-ended", network.id, "ada", "admin", 4e9)
    await store.end_console_session("s-ended")
    return network.id


@pytest.mark.parametrize(("caller", "live"), [
    pytest.param(Caller(token_id="old"), True, id="current-token"),
    # Nothing can have revoked a token the store never recorded either.
    pytest.param(Caller(token_id="never-recorded"), True, id="unrecorded-token"),
    pytest.param(Caller(token_id="gone"), False, id="revoked-token"),
    pytest.param(Caller(token_id="superseded"), False, id="token-in-grace"),
    pytest.param(Caller(session_id="s-open"), True, id="open-session"),
    pytest.param(Caller(session_id="s-ended"), False, id="ended-session"),
    pytest.param(Caller(session_id="s-unknown"), False, id="unknown-session"),
])
async def test_a_rotation_asked_by(store: Store, caller: Caller, live: bool) -> None:
    network_id = await _ada(store)
    current = await store.current_admin_token(network_id, "ada")
    assert current is not None and current["jti"] == "old"
    seq = await store.latest_seq()
    new = _admin_token("new", network_id)
    if live:
        await store.rotate_admin_token(new, 3600, by=caller)
        assert (await store.current_admin_token(network_id, "ada") or {})["jti"] == "new"
    else:
        with pytest.raises(CallerNotLive):
            await store.rotate_admin_token(new, 3600, by=caller)
        assert await store.current_admin_token(network_id, "ada") == current  # nothing made
        assert await store.changes_since(seq) == []  # nor put on the feed


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

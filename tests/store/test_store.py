"""The store suite: every test runs against SQLite and PostgreSQL (fixture `backend`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.store import AlreadyExists, Change, FeedTailer, Store, open_store
from gateway.store.db import StoreUnavailable
from gateway.store.schema import MIGRATIONS


async def test_migrations_are_applied_once_and_reopening_is_harmless(
    store: Store, store_config: Path
) -> None:
    assert await store.schema_version() == len(MIGRATIONS)
    again = await open_store(load_config(store_config, environ={}))
    try:
        assert await again.schema_version() == len(MIGRATIONS)
        assert await again.migrate() == len(MIGRATIONS)
    finally:
        await again.close()


async def test_network_is_found_by_id_and_api_key(store: Store) -> None:
    network = await store.create_network("acme", "eu", secure=True)
    assert len(network.id) == 24 and len(network.api_key) == 48
    assert await store.get_network(network.id) == network
    assert await store.network_by_api_key(network.api_key) == network
    assert await store.network_by_api_key("nope") is None
    assert await store.get_network("nope") is None
    assert network in await store.list_networks()


async def test_usernames_are_unique_within_a_network_only(store: Store) -> None:
    first = await store.create_network("one", "sg", secure=False)
    second = await store.create_network("two", "sg", secure=False)
    admin = await store.create_admin(first.id, "alice", "admin", "hash")
    assert await store.admin_by_username(first.id, "alice") == admin
    with pytest.raises(AlreadyExists):
        await store.create_admin(first.id, "alice", "moderator", "hash")
    other = await store.create_admin(second.id, "alice", "super-admin", "hash")
    assert other.network_id == second.id
    assert await store.admin_by_username(second.id, "bob") is None


async def test_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    before = await store.latest_seq()
    with pytest.raises(RuntimeError):
        async with store.db.transaction() as tx:
            await store.append_change(tx, "test.rolled_back", None, {})
            raise RuntimeError("abort")
    assert await store.latest_seq() == before
    assert [c for c in await store.changes_since(before) if c.kind == "test.rolled_back"] == []


async def test_feed_entries_come_back_in_order_with_their_payload(store: Store) -> None:
    start = await store.latest_seq()
    seqs = [await store.publish("test.entry", None, {"i": i}) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    changes = await store.changes_since(start)
    assert [c.payload["i"] for c in changes if c.kind == "test.entry"] == list(range(5))
    assert await store.latest_seq() == seqs[-1]
    assert await store.changes_since(seqs[-1]) == []


async def test_concurrent_writers_are_seen_in_sequence_order(store: Store) -> None:
    start = await store.latest_seq()
    await asyncio.gather(*(store.publish("test.concurrent", None, {"i": i}) for i in range(40)))
    changes = await store.changes_since(start)
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert sorted(c.payload["i"] for c in changes) == list(range(40))


async def test_tailer_delivers_new_entries_to_subscribers(store: Store, store_config: Path) -> None:
    config = load_config(store_config, environ={})
    received: list[Change] = []
    arrived = asyncio.Event()

    def on_change(change: Change) -> None:
        received.append(change)
        if len(received) == 3:
            arrived.set()

    feed = FeedTailer(store, poll_interval=config.store.feed_poll_interval,
                      start_seq=await store.latest_seq())
    feed.subscribe(on_change)
    await asyncio.wait_for(feed.start(), 5)
    try:
        for i in range(3):
            await asyncio.wait_for(store.publish("test.tail", "net", {"i": i}), 5)
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await asyncio.wait_for(feed.stop(), 5)
    assert [c.payload["i"] for c in received] == [0, 1, 2]
    assert all(c.network_id == "net" for c in received)
    assert feed.last_seq == received[-1].seq
    assert feed.staleness() < 5


class _PausedReads:
    """The store's own `changes_since`, counted, each read's answer held until `go` is
    set (so a test can line callers up behind a read in progress); the reads numbered in
    `failing` fail as an unreachable store does."""

    def __init__(self, store: Store, *, failing: frozenset[int] = frozenset()) -> None:
        self.read = store.changes_since
        self.calls = 0
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.failing = failing

    async def __call__(self, seq: int, limit: int = 1000) -> list[Change]:
        self.calls += 1
        number = self.calls
        answer = await self.read(seq, limit)  # what the store held when the read began
        self.started.set()
        await self.go.wait()
        if number in self.failing:
            raise StoreUnavailable("unreachable")
        return answer


async def test_callers_queued_behind_a_read_share_the_next_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    feed = FeedTailer(store, poll_interval=0.05, start_seq=await store.latest_seq())
    feed.subscribe(lambda change: seen.append(change.seq))
    reads = _PausedReads(store)
    monkeypatch.setattr(store, "changes_since", reads)
    first = asyncio.create_task(feed.catch_up())
    await asyncio.wait_for(reads.started.wait(), 5)
    # Published after the first read looked: it misses this, the callers behind it may not.
    seq = await store.publish("test.x", None, {})
    queued = [asyncio.create_task(feed.catch_up()) for _ in range(10)]
    await asyncio.sleep(0)
    reads.go.set()
    await asyncio.wait_for(first, 5)
    assert seq not in seen
    await asyncio.wait_for(asyncio.gather(*queued), 5)
    assert seq in seen
    assert reads.calls == 2  # the first caller's read, then one for the ten behind it


@pytest.mark.parametrize(("failing", "second_fails"), [
    pytest.param(frozenset({1}), False, id="the-next-read-works"),
    pytest.param(frozenset({1, 2}), True, id="the-next-read-fails-too"),
])
async def test_a_failed_read_covers_no_one_who_asked_before_it_began(
    store: Store, monkeypatch: pytest.MonkeyPatch, failing: frozenset[int],
    second_fails: bool,
) -> None:
    """Callers who asked while a read was under way need a read of their own; callers
    queued behind that one share its answer, failure included (a slow store is not asked
    once per caller in turn)."""
    seen: list[int] = []
    feed = FeedTailer(store, poll_interval=0.05, start_seq=await store.latest_seq())
    feed.subscribe(lambda change: seen.append(change.seq))
    seq = await store.publish("test.x", None, {})
    reads = _PausedReads(store, failing=failing)
    monkeypatch.setattr(store, "changes_since", reads)
    first = asyncio.create_task(feed.catch_up())
    await asyncio.wait_for(reads.started.wait(), 5)
    behind = [asyncio.create_task(feed.catch_up()) for _ in range(3)]
    await asyncio.sleep(0)
    reads.go.set()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(first, 5)
    results = await asyncio.wait_for(asyncio.gather(*behind, return_exceptions=True), 5)
    assert reads.calls == 2
    if second_fails:
        assert all(isinstance(result, StoreUnavailable) for result in results) and seen == []
    else:
        assert results == [None, None, None] and seen == [seq]


async def test_a_failing_subscriber_does_not_stop_the_others(store: Store) -> None:
    seen: list[int] = []

    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    feed = FeedTailer(store, poll_interval=0.05, start_seq=await store.latest_seq())
    feed.subscribe(broken)
    feed.subscribe(lambda change: seen.append(change.seq))
    seq = await store.publish("test.x", None, {})
    assert await feed.poll_once() == 1
    assert seen == [seq]

"""Audit entries declared before a write commit with it, or not at all."""

from __future__ import annotations

import pytest

from gateway.store import Store
from gateway.store.pending_audit import PENDING, PendingAudit


def _entry(network_id: str, action: str) -> PendingAudit:
    return PendingAudit(network_id, 1.0, "ada", "admin", action, "t", "req", "127.0.0.1")


async def test_the_entry_commits_with_the_change(store: Store) -> None:
    network = await store.create_network("n", "sg", False)
    entry = _entry(network.id, "network.secure_mode")
    token = PENDING.set((entry,))
    try:
        await store.set_network_flags(network.id, secure=True)
    finally:
        PENDING.reset(token)
    assert entry.written
    [logged] = await store.audit_page(network.id, 10, None)
    assert logged.action == "network.secure_mode" and logged.actor == "ada"


async def test_a_rolled_back_change_leaves_no_entry(store: Store) -> None:
    network = await store.create_network("n", "sg", False)
    token = PENDING.set((_entry(network.id, "doomed"),))
    try:
        with pytest.raises(RuntimeError):
            async with store.db.transaction() as tx:
                await tx.execute("UPDATE networks SET name = $2 WHERE id = $1", network.id, "x")
                raise RuntimeError("the change fails")
    finally:
        PENDING.reset(token)
    assert await store.audit_page(network.id, 10, None) == []
    stored = await store.get_network(network.id)
    assert stored is not None and stored.name == "n"

"""Store.audit_page: paging with the action and actor filters, folded entries, both backends."""

from __future__ import annotations

from gateway.store import Store
from gateway.store.pending_audit import PendingAudit


def _entry(network_id: str, actor: str, action: str, target: str) -> PendingAudit:
    return PendingAudit(network_id, 1.0, actor, "admin", action, target, "req", "127.0.0.1")


async def test_filters_by_action_group_and_actor_while_paging(store: Store) -> None:
    network = await store.create_network("n", "sg", False)
    other = await store.create_network("o", "sg", False)
    for actor, action, target in (
        ("ann", "admin_token.generate", "1"), ("bob", "admin_token.revoke", "2"),
        ("ann", "user.ban", "3"), ("ann", "admin_token.revoke", "4"),
        ("ann", "adminXtoken.revoke", "5"),  # `_` is not a wildcard
        ("ann", "admin_tokens.x", "6"),  # another group that merely starts the same
        ("bob", "user.unban", "7"), ("ann", "user.unban", "8"),
    ):
        await store.add_audit(_entry(network.id, actor, action, target))
    await store.add_audit(_entry(other.id, "ann", "user.ban", "elsewhere"))

    async def targets(limit: int = 50, before: int | None = None, **filters: str) -> list[str]:
        entries = await store.audit_page(network.id, limit, before, **filters)
        return [e.target or "" for e in entries]

    assert await targets(action="admin_token") == ["4", "2", "1"]
    assert await targets(action="admin_token.revoke") == ["4", "2"]
    assert await targets(action="admin_token.") == []  # a group is named without the dot
    assert await targets(actor="ann") == ["8", "6", "5", "4", "3", "1"]
    assert await targets(action="user", actor="ann") == ["8", "3"]
    assert await targets(actor="nobody") == []
    # Paging goes on from the last id of the filtered page.
    first = await store.audit_page(network.id, 2, None, actor="ann")
    assert [e.target for e in first] == ["8", "6"]
    assert await targets(2, first[-1].id, actor="ann") == ["5", "4"]


async def test_folded_entries_say_so(store: Store) -> None:
    network = await store.create_network("n", "sg", False)
    await store.add_audit(_entry(network.id, "ann", "user.ban", "u1"))
    failed = _entry(network.id, "ann", "console.login_failed", "ann")
    for _ in range(3):
        await store.add_folded_audit(failed, "ann@127.0.0.1/minute-1")
    folded, plain = await store.audit_page(network.id, 10, None)
    assert (folded.action, folded.folded, folded.count) == ("console.login_failed", True, 3)
    assert (plain.folded, plain.count) == (False, 1)

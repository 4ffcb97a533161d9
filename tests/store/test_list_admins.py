"""Store.list_admins: one network's console users, oldest first, on both backends."""

from __future__ import annotations

from collections.abc import Callable

from gateway.store import Store


def _fixed(at: float) -> Callable[[], float]:
    return lambda: at


async def test_list_admins_of_one_network_oldest_first(store: Store) -> None:
    network = await store.create_network("n", "sg", False)
    other = await store.create_network("o", "sg", False)
    now = store.clock()
    for offset, (username, role) in enumerate(
        (("zed", "super-admin"), ("amy", "moderator"), ("bob", "admin"))
    ):
        store.clock = _fixed(now + offset)  # created one second apart
        await store.create_admin(network.id, username, role, "hash")
    await store.create_admin(other.id, "stranger", "admin", "hash")
    admins = await store.list_admins(network.id)
    assert [(a.username, a.role) for a in admins] == [
        ("zed", "super-admin"), ("amy", "moderator"), ("bob", "admin")]
    assert [a.created_at for a in admins] == [now, now + 1, now + 2]
    assert await store.list_admins("no-such-network") == []

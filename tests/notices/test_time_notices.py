"""Time-based notices with the gateway's clock moved: a grace ending within the hour and
a token expiring within `notices.expiry_warning` (2h in these tests) are announced once
per subscription, however often and by however many gateways the scan runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.keys import STORE
from gateway.notices import kinds
from gateway.testing.support import Clock
from tests.notices.conftest import Hooks, gateway_config
from tests.notices.receiver import Receiver
from tests.proxy.conftest import in_process_gateway

SCANS = 0.4  # several scan intervals (50 ms)
HOUR = 3600.0


async def _jti(hooks: Hooks, username: str, *, in_grace: bool) -> str:
    rows = await hooks.gw.app[STORE].db.fetch(
        "SELECT jti, grace_until FROM credentials WHERE kind = 'admin' AND subject = $1",
        username)
    (jti,) = [r["jti"] for r in rows if (r["grace_until"] is not None) == in_grace]
    return str(jti)


async def test_grace_ending_within_the_hour(hooks: Hooks) -> None:
    receiver = hooks.receiver
    await hooks.subscribe("/grace", events=(kinds.ADMIN_TOKEN_GRACE_ENDING,))
    status, rotated, _ = await hooks.gw.call("POST", "/api/v1/admin-token", hooks.admin)
    assert status == 200  # the old token's grace: admin_rotation_grace, 24h
    old = await _jti(hooks, "boss", in_grace=True)
    hooks.clock.advance(22 * HOUR)
    await asyncio.sleep(SCANS)
    assert receiver.received == []
    hooks.clock.advance(HOUR + 60)  # 59 minutes left
    await receiver.wait_for(lambda: len(receiver.acked()) == 1)
    await hooks.settled()  # a lease must not look ended while its attempt is on its way
    hooks.clock.advance(30 * 60)
    await asyncio.sleep(SCANS)
    (notice,) = receiver.received
    assert notice.kind == kinds.ADMIN_TOKEN_GRACE_ENDING
    assert notice.body["data"] == {"username": "boss", "tokenId": old,
                                   "graceUntil": rotated["previousTokenValidUntil"]}
    hooks.clock.advance(HOUR)  # the grace is over: nothing more to say
    await asyncio.sleep(SCANS)
    assert len(receiver.received) == 1


async def test_expiring_once_per_subscription_whatever_scans(
    hooks: Hooks, tmp_path: Path, store_config: Path, clock: Clock, receiver: Receiver
) -> None:
    await hooks.subscribe("/a", events=(kinds.ADMIN_TOKEN_EXPIRING,))
    carol = await hooks.gw.admin_token(hooks.network, "carol", "admin")  # lives a day
    status, _, _ = await hooks.gw.call("DELETE", "/api/v1/admin-token", carol,
                                       json={"username": "carol"})
    assert status == 200  # a revoked token is never announced as expiring
    boss = await _jti(hooks, "boss", in_grace=False)
    second = gateway_config(tmp_path, store_config, name="second.yaml")
    async with in_process_gateway(second, clock=clock):  # scans the same store too
        hooks.clock.advance(21 * HOUR)
        await asyncio.sleep(SCANS)
        assert receiver.received == []
        hooks.clock.advance(HOUR + 60)  # 1h59 left: within the 2h warning
        await receiver.wait_for(lambda: len(receiver.acked()) == 1)
        await hooks.subscribe("/b", events=(kinds.ADMIN_TOKEN_EXPIRING,))  # gets its own
        await receiver.wait_for(lambda: len(receiver.acked()) == 2)
        await hooks.settled()
        hooks.clock.advance(HOUR)
        await asyncio.sleep(SCANS)
    assert sorted(r.path for r in receiver.received) == ["/a", "/b"]
    for notice in receiver.received:
        assert notice.kind == kinds.ADMIN_TOKEN_EXPIRING
        assert notice.body["data"]["username"] == "boss"
        assert notice.body["data"]["tokenId"] == boss
    assert receiver.received[0].body["data"] == receiver.received[1].body["data"]

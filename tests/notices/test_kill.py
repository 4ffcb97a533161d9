"""At-least-once across SIGKILL: a real `gateway serve` is killed -9 with notices
committed and not yet delivered (some mid-request at the receiver, the rest still in the
outbox); once it is restarted, the receiver acknowledges every one of them.

docs/RELIABILITY.md ("Webhook deliveries and SIGKILL") quotes this test's figures.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import aiohttp

from gateway.notices import kinds
from gateway.notices.delivery import MAX_IN_FLIGHT
from gateway.testing.process import GatewayProcess, run_cli
from tests.notices.conftest import gateway_config
from tests.notices.receiver import Receiver, start_receiver

CHANGES = MAX_IN_FLIGHT + 8  # more than one process sends at once: some wait in the outbox


async def _admin_token(config: Path, url: str) -> tuple[str, str]:
    code, out, err = await run_cli("network", "create", "--config", str(config),
                                   "--name", "acme", "--secure")
    assert code == 0, err
    network = json.loads(out)
    code, _, err = await run_cli("admin", "create", "--config", str(config), "--network",
                                 network["networkId"], "--username", "boss", "--role", "admin",
                                 "--password-stdin", stdin=b"correct horse\n")
    assert code == 0, err
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/console/v1/login", headers={"x-api-key": network["apiKey"]},
        json={"username": "boss", "password": "correct horse"},
    ) as answer:
        body = await answer.json()
        assert answer.status == 200, body
    return network["networkId"], str(body["adminToken"])


async def test_deliveries_survive_sigkill(tmp_path: Path, store_config: Path) -> None:
    receiver = Receiver()
    runner = await start_receiver(receiver)
    config = gateway_config(tmp_path, store_config, poll_interval="100ms",
                            delivery_timeout="3s")  # a claim's lease: 2 x 3s + 2s
    gateway = GatewayProcess(config)
    try:
        await gateway.start()
        _network, token = await _admin_token(config, gateway.url)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{gateway.url}/api/v3/webhooks", json={
                "url": receiver.url_for("/k"), "events": [kinds.SERVER_KEY_GENERATED],
            }) as answer:
                created = await answer.json()
                assert answer.status == 201, created
            receiver.secrets["/k"] = created["secret"]
            receiver.hang()  # requests arrive and are never answered
            for _ in range(CHANGES):
                async with session.post(f"{gateway.url}/api/v3/networks/server-key") as answer:
                    assert answer.status == 200  # committed, with its outbox row
            await receiver.wait_for(lambda: len(receiver.received) >= MAX_IN_FLIGHT)
        in_flight = {r.delivery_id for r in receiver.received}
        gateway.signal(signal.SIGKILL)
        assert await gateway.stop() == -signal.SIGKILL
        receiver.release()  # from now on every request is answered 200

        restarted = time.monotonic()
        await gateway.start()
        await receiver.wait_for(
            lambda: len({r.delivery_id for r in receiver.acked()}) >= CHANGES, timeout=30)
        recovered = time.monotonic() - restarted
        acked = [r.delivery_id for r in receiver.acked()]
        assert len(acked) == len(set(acked)) == CHANGES  # each once, none lost
        assert in_flight <= set(acked)  # those cut mid-request, sent again with their id
        print(f"\n{CHANGES} committed, {len(in_flight)} mid-request at the kill, "
              f"{CHANGES - len(in_flight)} not yet claimed; after restart all {CHANGES} "
              f"acknowledged within {recovered:.1f}s, 0 lost")
    finally:
        await gateway.stop()
        receiver.release()
        await runner.cleanup()
    assert receiver.bad == [] and receiver.overlaps == []

"""A second gateway process for the feed tests: writes entries and tails everyone's.

Usage: python -m tests.store.feed_peer CONFIG NAME COUNT PEERS
Prints one JSON object: every entry seen, in the order applied, with its delay.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from gateway.config import load_config
from gateway.store import Change, FeedTailer, open_store

WRITE_INTERVAL = 0.02
DEADLINE = 30.0


async def main(config_path: str, name: str, count: int, peers: int) -> None:
    config = load_config(config_path)
    store = await open_store(config)
    seen: list[dict[str, object]] = []
    everything = asyncio.Event()

    def on_change(change: Change) -> None:
        if change.kind != "test.peer":
            return
        seen.append({
            "seq": change.seq,
            "writer": change.payload["writer"],
            "i": change.payload["i"],
            "delay": time.time() - change.created_at,
        })
        if len(seen) >= count * peers:
            everything.set()

    feed = FeedTailer(store, poll_interval=config.store.feed_poll_interval)
    feed.subscribe(on_change)
    await feed.start()
    print(json.dumps({"ready": name}), flush=True)
    sys.stdin.readline()  # the test starts every peer's writes at once
    for i in range(count):
        await store.publish("test.peer", None, {"writer": name, "i": i})
        await asyncio.sleep(WRITE_INTERVAL)
    try:
        await asyncio.wait_for(everything.wait(), DEADLINE)
    finally:
        await feed.stop()
        await store.close()
        print(json.dumps({"seen": seen}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))

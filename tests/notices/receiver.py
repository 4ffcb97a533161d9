"""A webhook receiver on loopback that checks every request as a careful customer would.

The check is written here from docs/WEBHOOKS.md, not imported from the gateway: a
signature the gateway computes wrongly in both places would otherwise pass. Every
request whose signature, timestamp, delivery id or body does not hold is kept in `bad`
(and answered 400); the fixtures fail a test that leaves anything there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOLERANCE = 300


@dataclass
class Received:
    path: str
    delivery_id: str
    kind: str
    timestamp: int
    body: dict[str, Any]
    status: int  # what the receiver answered


@dataclass
class Receiver:
    now: Callable[[], float] = time.time
    url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # path -> secret
    script: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer
    received: list[Received] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    delay: float = 0.0
    in_flight: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)  # a delivery id sent twice at once
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _gate: asyncio.Event | None = None

    def url_for(self, path: str) -> str:
        return f"{self.url}{path}"

    def hang(self) -> None:
        """Hold every request from now on without answering, until `release()`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def acked(self, kind: str | None = None) -> list[Received]:
        """Deliveries answered 2xx (what the gateway may mark delivered)."""
        return [r for r in self.received
                if 200 <= r.status < 300 and (kind is None or r.kind == kind)]

    async def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver: condition not met within {timeout}s; got "
                    f"{[(r.kind, r.status) for r in self.received]}, bad {self.bad}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.05)
            except TimeoutError:
                pass

    def _problem(self, request: web.Request, raw: bytes) -> str | None:
        secret = self.secrets.get(request.path)
        if secret is None:
            return f"no subscription at {request.path}"
        stamp = request.headers.get("X-Gateway-Timestamp", "")
        if not (stamp.isascii() and stamp.isdigit()):
            return f"timestamp {stamp!r} is not unix seconds"
        if abs(self.now() - int(stamp)) > TOLERANCE:
            return f"timestamp {stamp} is {self.now() - int(stamp):.0f}s off"
        expected = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + raw,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Gateway-Signature", "")):
            return "signature does not match"
        if request.content_type != "application/json":
            return f"content type {request.content_type}"
        body = json.loads(raw)
        if body.get("id") != request.headers.get("X-Gateway-Delivery"):
            return "body id and X-Gateway-Delivery differ"
        if body.get("type") != request.headers.get("X-Gateway-Event"):
            return "body type and X-Gateway-Event differ"
        for key in ("id", "type", "networkId", "createdAt", "data"):
            if key not in body:
                return f"body without {key}"
        return None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        problem = self._problem(request, raw)
        if problem is not None:
            self.bad.append(f"{request.path}: {problem}")
            self.arrived.set()
            return web.Response(status=400)
        body = json.loads(raw)
        delivery_id = body["id"]
        if delivery_id in self.in_flight:
            self.overlaps.append(delivery_id)
        self.in_flight.add(delivery_id)
        try:
            record = Received(request.path, delivery_id, body["type"],
                              int(request.headers["X-Gateway-Timestamp"]), body, 0)
            if self._gate is not None:
                self.received.append(record)  # seen, never answered
                self.arrived.set()
                await self._gate.wait()
                return web.Response(status=503)
            if self.delay:
                await asyncio.sleep(self.delay)
            statuses = self.script.get(request.path)
            record.status = statuses.pop(0) if statuses else 200
            self.received.append(record)
            self.arrived.set()
            return web.Response(status=record.status)
        finally:
            self.in_flight.discard(delivery_id)


async def start_receiver(receiver: Receiver) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/{name:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}"
    return runner

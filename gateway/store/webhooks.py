"""Webhook subscriptions and their outbox rows: claimed, delivered, retried, given up."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.core import StoreCore
from gateway.store.db import Row
from gateway.store.outbox import Notice, queue_notice


class WebhookLimit(Exception):
    """The network already has as many subscriptions as it may."""


@dataclass(frozen=True)
class Webhook:
    id: str
    network_id: str
    url: str
    events: tuple[str, ...]
    created_at: float
    created_by: str


@dataclass(frozen=True)
class DeliveryStats:
    pending: int = 0
    failed: int = 0  # given up after the last attempt
    last_delivered_at: float | None = None
    last_attempt_at: float | None = None
    last_error: str | None = None  # of the newest attempt that failed, if it was the last


@dataclass(frozen=True)
class Delivery:
    """A claimed outbox row with what sending it needs."""

    id: str
    subscription_id: str
    kind: str
    body: str
    attempts: int  # this attempt included
    url: str
    sealed_secret: str
    claimed_until: float  # the lease: releasing it gives back only this claim


@dataclass(frozen=True)
class DeliveryState:
    delivered_at: float | None
    failed_at: float | None
    attempts: int
    last_error: str | None


_WEBHOOK_COLUMNS = "id, network_id, url, events, created_at, created_by"
# Due: not delivered, not given up, its time has come and no live lease holds it.
_DUE = (
    "o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1"
    " AND (o.claimed_until IS NULL OR o.claimed_until <= $1)"
)


class WebhookQueries(StoreCore):
    # -- subscriptions --------------------------------------------------------------

    async def add_webhook(self, webhook: Webhook, sealed_secret: str, *, limit: int) -> None:
        """Store a subscription; the count is checked in the write transaction (which every
        writer serialises on), so two racing for the last slot cannot both win."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT COUNT(*) AS n FROM webhook_subscriptions WHERE network_id = $1",
                webhook.network_id,
            )
            if row is not None and int(row["n"]) >= limit:
                raise WebhookLimit(f"the network already has {limit} webhooks")
            await tx.execute(
                f"INSERT INTO webhook_subscriptions ({_WEBHOOK_COLUMNS}, sealed_secret)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                webhook.id, webhook.network_id, webhook.url, json.dumps(list(webhook.events)),
                webhook.created_at, webhook.created_by, sealed_secret,
            )

    async def webhooks(self, network_id: str) -> list[Webhook]:
        rows = await self.db.fetch(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhook_subscriptions WHERE network_id = $1"
            " ORDER BY created_at, id",
            network_id,
        )
        return [_webhook(row) for row in rows]

    async def webhook(self, network_id: str, webhook_id: str) -> Webhook | None:
        row = await self.db.fetchrow(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhook_subscriptions"
            " WHERE id = $1 AND network_id = $2",
            webhook_id, network_id,
        )
        return _webhook(row) if row else None

    async def delete_webhook(self, network_id: str, webhook_id: str) -> Webhook | None:
        """Remove a subscription and its outbox rows: nothing more is sent to it."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhook_subscriptions"
                " WHERE id = $1 AND network_id = $2",
                webhook_id, network_id,
            )
            if row is None:
                return None
            await tx.execute("DELETE FROM notice_outbox WHERE subscription_id = $1", webhook_id)
            await tx.execute("DELETE FROM webhook_subscriptions WHERE id = $1", webhook_id)
        return _webhook(row)

    async def delivery_stats(self, network_id: str) -> dict[str, DeliveryStats]:
        """Per subscription of the network: what waits, what was given up, the last try."""
        counts = await self.db.fetch(
            "SELECT subscription_id, SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL"
            " THEN 1 ELSE 0 END) AS pending, SUM(CASE WHEN failed_at IS NOT NULL THEN 1"
            " ELSE 0 END) AS failed, MAX(delivered_at) AS last_delivered,"
            " MAX(last_attempt_at) AS last_attempt FROM notice_outbox WHERE network_id = $1"
            " GROUP BY subscription_id",
            network_id,
        )
        errors = await self.db.fetch(
            "SELECT subscription_id, last_error, last_attempt_at FROM notice_outbox"
            " WHERE network_id = $1 AND last_error IS NOT NULL AND delivered_at IS NULL",
            network_id,
        )
        newest: dict[str, tuple[float, str]] = {}
        for row in errors:
            at = float(row["last_attempt_at"] or 0)
            if row["subscription_id"] not in newest or at > newest[row["subscription_id"]][0]:
                newest[row["subscription_id"]] = (at, row["last_error"])
        stats = {}
        for row in counts:
            last_attempt = _float(row["last_attempt"])
            error = newest.get(row["subscription_id"])
            stats[row["subscription_id"]] = DeliveryStats(
                pending=int(row["pending"] or 0),
                failed=int(row["failed"] or 0),
                last_delivered_at=_float(row["last_delivered"]),
                last_attempt_at=last_attempt,
                # Only when that failure is the newest attempt: a later success clears it.
                last_error=error[1] if error and error[0] == last_attempt else None,
            )
        return stats

    # -- queueing -------------------------------------------------------------------

    async def queue_test_notice(self, notice: Notice, subscription_id: str) -> str | None:
        """A test event for one subscription (whatever kinds it asked for)."""
        async with self.db.transaction() as tx:
            ids = await queue_notice(tx, notice, self.clock(), subscription_id=subscription_id)
        return ids[0] if ids else None

    async def queue_scanned(self, notices: Sequence[Notice]) -> int:
        """Queue keyed notices found by the periodic scan; a (subscription, key) queued
        before is skipped, so every process may scan at once. Returns the rows added."""
        keyed = [n for n in notices if n.key is not None]
        if not keyed:
            return 0
        networks = sorted({n.network_id for n in keyed})
        subscriptions: dict[str, list[tuple[str, set[str]]]] = {}
        for row in await self.db.fetch("SELECT id, network_id, events FROM webhook_subscriptions"):
            if row["network_id"] in networks:
                subscriptions.setdefault(row["network_id"], []).append(
                    (row["id"], set(json.loads(row["events"]))))
        # Read first, write only what is new: a scan that finds nothing takes no write lock.
        done = {row["dedupe_key"] for row in await self.db.fetch(
            "SELECT dedupe_key FROM notice_outbox WHERE dedupe_key IS NOT NULL")}
        todo = [
            (subscription, notice)
            for notice in keyed
            for subscription, kinds in subscriptions.get(notice.network_id, [])
            if notice.kind in kinds and f"{subscription}:{notice.key}" not in done
        ]
        if not todo:
            return 0
        added = 0
        now = self.clock()
        async with self.db.transaction() as tx:
            for subscription, notice in todo:
                added += len(await queue_notice(tx, notice, now, subscription_id=subscription))
        return added

    # -- delivering -----------------------------------------------------------------

    async def claim_deliveries(self, limit: int, lease: float) -> list[Delivery]:
        """Claim up to `limit` due rows for `lease` seconds. Claims are made in a write
        transaction, which every writer of every process serialises on, and each is
        conditional on no live lease: one row is never sent by two processes at once. A
        claimer that dies leaves the row to be claimed again when its lease ends."""
        now = self.clock()
        until = now + lease
        candidates = await self.db.fetch(
            f"SELECT o.id FROM notice_outbox o WHERE {_DUE}"
            " ORDER BY o.next_attempt_at, o.id LIMIT $2",
            now, limit,
        )
        if not candidates:  # the usual case: no write transaction, no lock
            return []
        claimed = []
        async with self.db.transaction() as tx:
            for candidate in candidates:
                row = await tx.fetchrow(
                    "UPDATE notice_outbox SET claimed_until = $2, attempts = attempts + 1,"
                    " last_attempt_at = $3 WHERE id = $1 AND delivered_at IS NULL"
                    " AND failed_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $3)"
                    " RETURNING id",
                    candidate["id"], until, now,
                )
                if row is not None:
                    claimed.append(candidate["id"])
            rows = [
                await tx.fetchrow(
                    "SELECT o.id, o.subscription_id, o.kind, o.body, o.attempts, s.url,"
                    " s.sealed_secret FROM notice_outbox o JOIN webhook_subscriptions s"
                    " ON s.id = o.subscription_id WHERE o.id = $1",
                    delivery_id,
                )
                for delivery_id in claimed
            ]
        return [
            Delivery(id=row["id"], subscription_id=row["subscription_id"], kind=row["kind"],
                     body=row["body"], attempts=int(row["attempts"]), url=row["url"],
                     sealed_secret=row["sealed_secret"], claimed_until=until)
            for row in rows if row is not None
        ]

    async def delivery_succeeded(self, delivery_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE notice_outbox SET delivered_at = $2, claimed_until = NULL,"
                " last_error = NULL WHERE id = $1",
                delivery_id, self.clock(),
            )

    async def delivery_failed(self, delivery_id: str, error: str, retry_at: float | None) -> None:
        """Record a failed attempt: try again at `retry_at`, or give up (None)."""
        async with self.db.transaction() as tx:
            if retry_at is None:
                await tx.execute(
                    "UPDATE notice_outbox SET failed_at = $2, claimed_until = NULL,"
                    " last_error = $3 WHERE id = $1",
                    delivery_id, self.clock(), error,
                )
            else:
                await tx.execute(
                    "UPDATE notice_outbox SET next_attempt_at = $2, claimed_until = NULL,"
                    " last_error = $3 WHERE id = $1",
                    delivery_id, retry_at, error,
                )

    async def release_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Give back claims whose attempt was cut short (shutting down): due at once, and
        the attempt not counted. A claim that has meanwhile ended is left alone."""
        async with self.db.transaction() as tx:
            for delivery in deliveries:
                await tx.execute(
                    "UPDATE notice_outbox SET claimed_until = NULL, attempts = attempts - 1"
                    " WHERE id = $1 AND claimed_until = $2 AND delivered_at IS NULL"
                    " AND failed_at IS NULL",
                    delivery.id, delivery.claimed_until,
                )

    async def delivery_state(self, delivery_id: str) -> DeliveryState | None:
        row = await self.db.fetchrow(
            "SELECT delivered_at, failed_at, attempts, last_error FROM notice_outbox"
            " WHERE id = $1",
            delivery_id,
        )
        if row is None:
            return None
        return DeliveryState(_float(row["delivered_at"]), _float(row["failed_at"]),
                             int(row["attempts"]), row["last_error"])

    async def prune_outbox(self, before: float) -> None:
        """Drop rows delivered or given up before `before`. The caller keeps them longer
        than a scanned notice can be found again, so a pruned key is never queued twice."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM notice_outbox WHERE created_at < $1"
                " AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)",
                before,
            )

    # -- what the periodic scan looks at --------------------------------------------

    async def admin_tokens_ending(
        self, now: float, grace_within: float, expiry_within: float
    ) -> tuple[list[Row], list[Row]]:
        """Live admin tokens of networks with a subscription: (grace ending within
        `grace_within`, expiring within `expiry_within` and not in a grace)."""
        subscribed = "network_id IN (SELECT network_id FROM webhook_subscriptions)"
        grace = await self.db.fetch(
            "SELECT jti, network_id, subject, grace_until FROM credentials WHERE kind = 'admin'"
            " AND revoked_at IS NULL AND grace_until IS NOT NULL AND grace_until > $1"
            f" AND grace_until <= $2 AND expires_at > $1 AND {subscribed}",
            now, now + grace_within,
        )
        expiring = await self.db.fetch(
            "SELECT jti, network_id, subject, expires_at FROM credentials WHERE kind = 'admin'"
            " AND revoked_at IS NULL AND grace_until IS NULL AND expires_at > $1"
            f" AND expires_at <= $2 AND {subscribed}",
            now, now + expiry_within,
        )
        return list(grace), list(expiring)


def _webhook(row: Row) -> Webhook:
    return Webhook(
        id=row["id"], network_id=row["network_id"], url=row["url"],
        events=tuple(json.loads(row["events"])), created_at=float(row["created_at"]),
        created_by=row["created_by"],
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

"""Webhook subscriptions (docs/WEBHOOKS.md): signed notices to a network's admins."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import field_error, json_object, text_field
from gateway.api.caller import caller
from gateway.api.routes import endpoint, path_param
from gateway.api.sessions import SUCCESS
from gateway.errors import conflict, not_found
from gateway.keys import FEED, NOTICES, RUNTIME, STORE, TOKENS
from gateway.notices import kinds
from gateway.notices.signing import sealing_purpose
from gateway.notices.targets import MAX_URL, url_problem
from gateway.store.core import new_id
from gateway.store.webhooks import DeliveryState, DeliveryStats, Webhook, WebhookLimit
from gateway.timefmt import iso

MAX_WEBHOOKS = 10
SECRET_PREFIX = "whsec_"  # recognisable in a secret scanner's findings
TEST_POLL = 0.05


def _iso(value: float | None) -> str | None:
    return iso(value) if value is not None else None


def webhook_json(webhook: Webhook, stats: DeliveryStats) -> dict[str, Any]:
    return {
        "webhookId": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "createdAt": iso(webhook.created_at),
        "createdBy": webhook.created_by,
        "deliveries": {
            "pending": stats.pending,
            "failed": stats.failed,
            "lastDeliveredAt": _iso(stats.last_delivered_at),
            "lastAttemptAt": _iso(stats.last_attempt_at),
            "lastError": stats.last_error,
        },
    }


def _audit_target(webhook: Webhook) -> str:
    # The host only: a receiver's URL often carries its own secret in the path or query.
    return f"{webhook.id} ({urlsplit(webhook.url).hostname})"


def _url(body: dict[str, Any], allow_private: bool) -> str:
    url = text_field(body, "url", max_length=MAX_URL, required=True)
    assert url is not None
    problem = url_problem(url, allow_private=allow_private)
    if problem is not None:
        raise field_error("url", problem)
    return url


def _events(body: dict[str, Any]) -> tuple[str, ...]:
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise field_error("events", "is required: a non-empty list of event types")
    for index, kind in enumerate(events):
        if kind not in kinds.KINDS:
            raise field_error(f"events[{index}]", f"must be one of {', '.join(kinds.KINDS)}")
    return tuple(dict.fromkeys(events))  # each once, in the order given


async def create_webhook(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await json_object(request)
    settings = request.app[RUNTIME].current.config.notices
    url = _url(body, settings.allow_private_targets)
    events = _events(body)
    store = request.app[STORE]
    webhook = Webhook(id=new_id(), network_id=principal.network_id, url=url, events=events,
                      created_at=store.clock(), created_by=principal.user_id)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    # Sealed, not hashed: every delivery is signed with it.
    sealed = request.app[TOKENS].sealer.seal(secret.encode(), sealing_purpose(webhook.id))
    try:
        async with audited(request, "webhook.create", _audit_target(webhook)):
            await store.add_webhook(webhook, sealed, limit=MAX_WEBHOOKS)
    except WebhookLimit:
        raise conflict(
            f"the network already has {MAX_WEBHOOKS} webhooks: delete one first"
        ) from None
    await request.app[FEED].catch_up()
    answer = webhook_json(webhook, DeliveryStats())
    answer["secret"] = secret  # shown this once
    return web.json_response(answer, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    network_id = caller(request).network_id
    store = request.app[STORE]
    webhooks = await store.webhooks(network_id)
    stats = await store.delivery_stats(network_id)
    return web.json_response(
        {"webhooks": [webhook_json(w, stats.get(w.id, DeliveryStats())) for w in webhooks]}
    )


async def _webhook(request: web.Request) -> Webhook:
    webhook = await request.app[STORE].webhook(
        caller(request).network_id, path_param(request, "webhook_id")
    )
    if webhook is None:
        raise not_found("webhookId Not Found.")
    return webhook


async def delete_webhook(request: web.Request) -> web.Response:
    webhook = await _webhook(request)
    async with audited(request, "webhook.delete", _audit_target(webhook)):
        if await request.app[STORE].delete_webhook(webhook.network_id, webhook.id) is None:
            raise not_found("webhookId Not Found.")  # deleted meanwhile
    await request.app[FEED].catch_up()
    return web.json_response(SUCCESS)


async def send_test_event(request: web.Request) -> web.Response:
    """Queue a `webhook.test` notice for this subscription and wait (at most one attempt's
    timeout) for the first attempt: 200 with its outcome, or 202 while it is still on its
    way. Either way it goes through the outbox like any notice, retries included."""
    principal = caller(request)
    webhook = await _webhook(request)
    store = request.app[STORE]
    async with audited(request, "webhook.test", _audit_target(webhook)):
        delivery_id = await store.queue_test_notice(
            kinds.webhook_test(principal, webhook.id), webhook.id
        )
    if delivery_id is None:
        raise not_found("webhookId Not Found.")
    await request.app[FEED].catch_up()
    worker = request.app.get(NOTICES)
    if worker is not None:
        worker.wake()
    timeout = request.app[RUNTIME].current.config.notices.delivery_timeout
    state = await _first_attempt(request, delivery_id, timeout + 1.0)
    answer: dict[str, Any] = {"deliveryId": delivery_id, "delivered": False, "attempts": 0,
                              "error": None}
    if state is not None:
        answer.update(delivered=state.delivered_at is not None, attempts=state.attempts,
                      error=state.last_error)
    done = state is not None and (state.delivered_at is not None or state.last_error is not None)
    return web.json_response(answer, status=200 if done else 202)


async def _first_attempt(
    request: web.Request, delivery_id: str, within: float
) -> DeliveryState | None:
    """The delivery's state once an attempt has ended, or as it is after `within`."""
    deadline = time.monotonic() + within
    while True:
        state = await request.app[STORE].delivery_state(delivery_id)
        ended = state is not None and (state.delivered_at or state.last_error)
        if ended or state is None or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(TEST_POLL)


ENDPOINTS = (
    endpoint("GET", "/api/v3/webhooks", list_webhooks),
    endpoint("POST", "/api/v3/webhooks", create_webhook),
    endpoint("DELETE", "/api/v3/webhooks/{webhook_id}", delete_webhook),
    endpoint("POST", "/api/v3/webhooks/{webhook_id}/test", send_test_event),
)

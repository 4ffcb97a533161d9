"""What a webhook receiver checks: the signature, the timestamp, the delivery id.

    X-Gateway-Signature: sha256=<hex HMAC-SHA256(key=secret, msg=f"{timestamp}." + body)>
    X-Gateway-Timestamp: <unix seconds, an integer>
    X-Gateway-Delivery:  <the delivery id, also the body's "id": the same on every retry>
    X-Gateway-Event:     <the kind, also the body's "type">

The key is the subscription's secret exactly as shown at creation (its UTF-8 bytes);
the body is the raw request body, byte for byte. Signing the timestamp with the body
lets a receiver refuse a replayed delivery by its age (TOLERANCE) without keeping
state; the delivery id lets it drop a retry of one it already handled.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE = "X-Gateway-Signature"
TIMESTAMP = "X-Gateway-Timestamp"
DELIVERY = "X-Gateway-Delivery"
EVENT = "X-Gateway-Event"
TOLERANCE = 300  # seconds a receiver should accept a timestamp off its own clock


def sealing_purpose(webhook_id: str) -> str:
    """The secret is stored sealed for its subscription: a sealed value moved to another
    row does not open."""
    return f"webhook-secret:{webhook_id}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(
    secret: str, timestamp: int, body: bytes, delivery_id: str, kind: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE: signature(secret, timestamp, body),
        TIMESTAMP: str(timestamp),
        DELIVERY: delivery_id,
        EVENT: kind,
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float,
           tolerance: float = TOLERANCE) -> bool:
    """A receiver's check, for reference (docs/WEBHOOKS.md shows it standalone)."""
    raw = headers.get(TIMESTAMP, "")
    if not (raw.isascii() and raw.isdigit()) or abs(now - int(raw)) > tolerance:
        return False
    expected = signature(secret, int(raw), body)
    return hmac.compare_digest(expected, headers.get(SIGNATURE, ""))

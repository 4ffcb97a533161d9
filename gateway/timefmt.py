"""The contract's time format: ISO 8601 UTC with a `Z`, whole seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Open WebSockets by the credential that opened them, so that a revocation or a ban
arriving through the change feed ends them (within the feed bound), and an expiring
token ends its connection at `exp` + leeway."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from gateway.auth.principal import Principal
from gateway.store import Change

K = TypeVar("K")
Stop = Callable[[str], None]  # called once with the reason the connection must end


class LiveSockets:
    def __init__(self) -> None:
        self._by_token: dict[str, set[Stop]] = {}
        self._by_user: dict[tuple[str, str], set[Stop]] = {}

    def __len__(self) -> int:
        return sum(len(stops) for stops in self._by_user.values())

    def register(
        self, principal: Principal, stop: Stop, *, expires_in: float | None = None
    ) -> Callable[[], None]:
        """Watch one connection; returns the function that stops watching it."""
        user = (principal.network_id, principal.user_id)
        if principal.token_id:  # console sessions have none: their bans/expiry still apply
            self._by_token.setdefault(principal.token_id, set()).add(stop)
        self._by_user.setdefault(user, set()).add(stop)
        timer = None
        if expires_in is not None:
            timer = asyncio.get_running_loop().call_later(
                max(0.0, expires_in), stop, "token expired"
            )

        def unregister() -> None:
            if timer is not None:
                timer.cancel()
            _discard(self._by_token, principal.token_id, stop)
            _discard(self._by_user, user, stop)

        return unregister

    def apply(self, change: Change) -> None:
        """Change-feed subscriber: end the connections a revocation or ban concerns."""
        if change.kind == "tokens.revoked":
            for jti, _exp in change.payload["tokens"]:
                for stop in list(self._by_token.get(jti, ())):
                    stop("token revoked")
        elif change.kind == "user.banned" and change.network_id:
            user = (change.network_id, change.payload["userId"])
            for stop in list(self._by_user.get(user, ())):
                stop("user banned")


def _discard(index: dict[K, set[Stop]], key: K, stop: Stop) -> None:
    stops = index.get(key)
    if stops is not None:
        stops.discard(stop)
        if not stops:
            del index[key]

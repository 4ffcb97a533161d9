"""Open WebSockets (and MQTT connections) by the credential that opened them, so that
they end when it stops being valid: a revocation, a ban, a console logout or session
end arriving through the change feed (within the feed bound), the token's expiry, the
end of a superseded admin token's grace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from gateway.auth.principal import Principal
from gateway.store import Change
from gateway.store.events import (
    ConsoleEnded,
    KeyRevoked,
    TokensRevoked,
    TokensSuperseded,
    UserBanned,
)

K = TypeVar("K", bound=Hashable)
Stop = Callable[[str], None]  # called with the reason the connection must end


class LiveSockets:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_credential: dict[str, set[Stop]] = {}  # token jti or console session id
        self._by_user: dict[tuple[str, str], set[Stop]] = {}
        self._by_kid: dict[str, set[Stop]] = {}  # the key that signed the token

    def __len__(self) -> int:
        return sum(len(stops) for stops in self._by_user.values())

    def open_with(self, principal: Principal) -> int:
        """How many connections the principal's credential holds open now."""
        return len(self._by_credential.get(_credential_id(principal), ()))

    def register(
        self, principal: Principal, stop: Stop, *, expires_in: float | None = None
    ) -> Callable[[], None]:
        """Watch one connection; returns the function that stops watching it.
        `expires_in`: seconds until the credential expires (leeway included)."""
        user = (principal.network_id, principal.user_id)
        credential = _credential_id(principal)
        self._by_credential.setdefault(credential, set()).add(stop)
        self._by_user.setdefault(user, set()).add(stop)
        if principal.kid:
            self._by_kid.setdefault(principal.kid, set()).add(stop)
        loop = asyncio.get_running_loop()
        timers: list[asyncio.TimerHandle] = []
        if expires_in is not None:
            timers.append(loop.call_later(max(0.0, expires_in), stop, "token expired"))
        if principal.grace_end is not None:
            timers.append(loop.call_later(max(0.0, principal.grace_end - self._clock()),
                                          stop, "admin token superseded"))

        def unregister() -> None:
            for timer in timers:
                timer.cancel()
            _discard(self._by_credential, credential, stop)
            _discard(self._by_user, user, stop)
            _discard(self._by_kid, principal.kid, stop)

        return unregister

    def apply(self, change: Change) -> None:
        """Change-feed subscriber: end the connections a change concerns."""
        match change.event:
            case TokensRevoked(_, tokens):
                for jti, _exp in tokens:
                    self._stop(jti, "token revoked")
            case ConsoleEnded(_, sessions):
                for session in sessions:
                    self._stop(session, "console session ended")
            case TokensSuperseded(_, tokens):
                loop = asyncio.get_running_loop()
                for jti, grace_until in tokens:
                    for stop in list(self._by_credential.get(jti, ())):
                        loop.call_later(max(0.0, grace_until - self._clock()), stop,
                                        "admin token superseded")
            case UserBanned(network_id, user_id):
                for stop in list(self._by_user.get((network_id, user_id), ())):
                    stop("user banned")
            case KeyRevoked(kid, _):
                for stop in list(self._by_kid.get(kid, ())):
                    stop("signing key revoked")

    def _stop(self, credential: str, reason: str) -> None:
        for stop in list(self._by_credential.get(credential, ())):
            stop(reason)


def _credential_id(principal: Principal) -> str:
    return principal.session_id or principal.token_id


def _discard(index: dict[K, set[Stop]], key: K, stop: Stop) -> None:
    stops = index.get(key)
    if stops is not None:
        stops.discard(stop)
        if not stops:
            del index[key]

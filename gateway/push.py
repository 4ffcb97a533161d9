"""The network-level push-notification setting: its model, and the copy upstreams see.

The API handlers (gateway/api/notifications.py) change it; the proxy reads the
in-memory `PushHeaders` for every forwarded request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway.store import Change, Store
from gateway.store.events import SettingUpdated

SETTING_NAME = "push"  # the row in `settings` holding the whole network-level setting
LEVEL = "network"

Event = tuple[str, str]  # (moduleName, name)

# The events a network can switch, in the order answers list them.
EVENTS: tuple[Event, ...] = (
    ("chat", "message.created"),
    ("social", "post.created"),
    ("social", "post.reacted"),
    ("social", "comment.created"),
    ("social", "comment.replied"),
    ("social", "comment.reacted"),
)
MODULES = tuple(dict.fromkeys(module for module, _ in EVENTS))


@dataclass(frozen=True)
class PushSetting:
    enabled: bool  # the network toggle
    events: dict[Event, bool]  # each event's own choice, kept while the toggle is off

    @classmethod
    def from_stored(cls, value: Any | None) -> PushSetting:
        """Decode the stored JSON; anything never set is on (the default)."""
        value = value or {}
        stored = value.get("events", {})
        events = {(m, n): bool(stored.get(m, {}).get(n, True)) for m, n in EVENTS}
        return cls(bool(value.get("isPushNotifiable", True)), events)

    def to_stored(self) -> dict[str, Any]:
        events: dict[str, dict[str, bool]] = {}
        for (module, name), on in self.events.items():
            events.setdefault(module, {})[name] = on
        return {"isPushNotifiable": self.enabled, "events": events}

    def delivers(self, module: str, name: str) -> bool:
        """Whether a push for this event goes out at all."""
        return self.enabled and self.events.get((module, name), False)

    def answer(self) -> dict[str, Any]:
        return {
            "level": LEVEL,
            "isPushNotifiable": self.enabled,
            "notifiableEvents": [
                {"moduleName": module, "name": name, "isPushNotifiable": self.events[module, name],
                 "isNetworkEnabled": self.enabled}
                for module, name in EVENTS
            ],
        }


async def load(store: Store, network_id: str) -> PushSetting:
    return PushSetting.from_stored(await store.get_setting(network_id, SETTING_NAME))


class PushHeaders:
    """The effective setting of every network as upstreams receive it, in memory.

    Proxied requests carry `X-Gateway-Push-Events`: `off` when the network toggle is
    off, else the delivered events as `module.name`, comma-separated. It is refreshed
    from the store when the change feed says a network's setting changed, so no
    request reads the store for it.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._values: dict[str, str] = {}
        self._refreshing: set[asyncio.Task[None]] = set()
        # A network that never saved a setting has the default: worked out once.
        self._default = _header(PushSetting.from_stored(None))

    def value(self, network_id: str) -> str:
        return self._values.get(network_id) or self._default

    def set(self, network_id: str, setting: PushSetting) -> None:
        self._values[network_id] = _header(setting)

    async def load_all(self) -> None:
        for network in await self._store.list_networks():
            self.set(network.id, await load(self._store, network.id))

    def apply(self, change: Change) -> None:
        """Feed subscriber (synchronous): schedule a refresh of one network's value."""
        event = change.event
        if not isinstance(event, SettingUpdated) or event.name != SETTING_NAME:
            return
        network_id = event.network_id
        if network_id is None:
            return

        async def refresh() -> None:
            self.set(network_id, await load(self._store, network_id))

        task = asyncio.get_running_loop().create_task(refresh(), name="gateway-push-refresh")
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)


def _header(setting: PushSetting) -> str:
    if not setting.enabled:
        return "off"
    return ",".join(f"{m}.{n}" for m, n in EVENTS if setting.delivers(m, n))

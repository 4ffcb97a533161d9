"""Push-notification settings, network level (API.md section 3).

The network toggle overrides the events without erasing them: while it is off every
event reports `isNetworkEnabled: false` and keeps its own `isPushNotifiable`, which
applies again once the toggle is back on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.body import field_error, json_object
from gateway.api.caller import caller
from gateway.api.routes import endpoint
from gateway.errors import conflict
from gateway.keys import STORE
from gateway.push import EVENTS, LEVEL, MODULES, SETTING_NAME, Event, PushSetting, load


@dataclass(frozen=True)
class Update:
    """A validated POST body; None / absent entries leave the current value alone."""

    enabled: bool | None
    events: dict[Event, bool]

    def apply(self, current: PushSetting) -> PushSetting:
        # The toggle applies first, so one request may switch the network on and edit events.
        enabled = current.enabled if self.enabled is None else self.enabled
        changed = {event: on for event, on in self.events.items() if current.events[event] != on}
        if changed and not enabled:
            raise conflict(
                "notifiableEvents cannot change while the network push setting"
                " (isPushNotifiable) is off"
            )
        return PushSetting(enabled, {**current.events, **changed})


def _check_level(level: Any) -> None:
    if level is None:
        raise field_error("level", "is required")
    if level != LEVEL:
        raise field_error("level", f'must be "{LEVEL}"')


def _flag(value: Any, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise field_error(where, "must be true or false")
    return value


def _parse_update(body: dict[str, Any]) -> Update:
    _check_level(body.get("level"))
    enabled = _flag(body.get("isPushNotifiable"), "isPushNotifiable")
    raw = body.get("notifiableEvents")
    if raw is None:
        return Update(enabled, {})
    if not isinstance(raw, list):
        raise field_error("notifiableEvents", "must be a list")
    events: dict[Event, bool] = {}
    for index, item in enumerate(raw):
        where = f"notifiableEvents[{index}]"
        if not isinstance(item, dict):
            raise field_error(where, "must be an object")
        module, name = item.get("moduleName"), item.get("name")
        if module not in MODULES:
            raise field_error(f"{where}.moduleName", f"must be one of {', '.join(MODULES)}")
        if (module, name) not in EVENTS:
            known = ", ".join(n for m, n in EVENTS if m == module)
            raise field_error(f"{where}.name", f"must be one of the {module} events: {known}")
        on = _flag(item.get("isPushNotifiable"), f"{where}.isPushNotifiable")
        if on is None:
            raise field_error(f"{where}.isPushNotifiable", "is required")
        event: Event = (module, str(name))
        if event in events:  # two answers for one event: refuse rather than guess
            raise field_error(where, f"repeats {module} {name}")
        events[event] = on
    return Update(enabled, events)


async def get_notification_setting(request: web.Request) -> web.Response:
    principal = caller(request)
    _check_level(request.query.get("level"))
    setting = await load(request.app[STORE], principal.network_id)
    return web.json_response(setting.answer())


async def update_notification_setting(request: web.Request) -> web.Response:
    principal = caller(request)
    update = _parse_update(await json_object(request))

    def change(stored: Any | None) -> dict[str, Any]:
        return update.apply(PushSetting.from_stored(stored)).to_stored()

    # Read and write in one transaction; a conflict raised by `change` writes nothing.
    async with audited(request, "notification_setting.update", "network"):
        stored = await request.app[STORE].update_setting(
            principal.network_id, SETTING_NAME, change
        )
    return web.json_response(PushSetting.from_stored(stored).answer())


ENDPOINTS = (
    endpoint("GET", "/api/v3/notification/setting", get_notification_setting),
    endpoint("POST", "/api/v3/notification/setting", update_notification_setting),
)

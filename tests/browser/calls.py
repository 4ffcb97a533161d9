"""Plain HTTP calls to the console tests' gateway, for setting the scene without a browser:
end users signing in, admin actions made with an admin token, failed console logins."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.browser.conftest import PASSWORD, Gateway, Network


def call(gateway: Gateway, method: str, path: str, *, token: str | None = None,
         body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON answer) of one request."""
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(gateway.url + path, method=method, data=data, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, json.loads(raw) if raw else None


def user_session(gateway: Gateway, network: Network, user_id: str,
                 display_name: str | None = None) -> str:
    """Sign an end user in with the network's API key; returns the access token."""
    body: dict[str, Any] = {"userId": user_id, "deviceId": f"device-{user_id}"}
    if display_name is not None:
        body["displayName"] = display_name
    status, answer = call(gateway, "POST", "/api/v3/sessions", body=body,
                          headers={"x-api-key": network.api_key})
    assert status == 200, answer
    token: str = answer["accessToken"]
    return token


def console_login(gateway: Gateway, network: Network, username: str,
                  password: str = PASSWORD) -> tuple[int, Any]:
    """A console login as a script would make it: (status, answer with the admin token)."""
    return call(gateway, "POST", "/console/v1/login", body={"username": username,
                                                             "password": password},
                headers={"x-api-key": network.api_key})


def admin_token(gateway: Gateway, network: Network, username: str) -> str:
    status, answer = console_login(gateway, network, username)
    assert status == 200, answer
    token: str = answer["adminToken"]
    return token

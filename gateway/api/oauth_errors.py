"""What the OAuth endpoints read and how they fail: form-encoded parameters (RFC 6749
section 3.1, RFC 7009 section 2.1, RFC 7662 section 2.1) and the RFCs' error shapes
(RFC 6749 section 5.2, RFC 6750 section 3), not the contract's."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.api.body import json_object
from gateway.errors import GatewayError, too_large

FORM = "application/x-www-form-urlencoded"
# Parameters these endpoints know; others are ignored (RFC 6749 section 3.1).
PARAMETERS = ("token", "token_type_hint")
MAX_FIELDS = 32  # a form with more is not a client of these endpoints
REALM = 'Bearer realm="gateway"'
# Answers that contain credentials' details must not be cached (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_BAD_TOKEN = ("Invalid token", "token expired")  # the gate's texts for a bad bearer token


class OAuthError(GatewayError):
    """`{"error": code, "error_description": text}` with the status the RFC gives."""

    def __init__(self, status: int, error: str, description: str | None = None, *,
                 challenge: str | None = None) -> None:
        headers = dict(NO_STORE)
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
        super().__init__(status, description or error, headers=headers)
        self.error = error
        self.description = description

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return web.Response(status=self.status, body=json.dumps(body).encode(),
                            content_type="application/json", headers=self.headers)


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def _client_refused(refused: GatewayError) -> OAuthError:
    """No usable credential: 401 `invalid_client` with a challenge (RFC 6749 section 5.2);
    `error="invalid_token"` when it was a bearer token that failed (RFC 6750 section 3)."""
    challenge = f'{REALM}, error="invalid_token"' if refused.message in _BAD_TOKEN else REALM
    return OAuthError(401, "invalid_client", refused.message, challenge=challenge)


def introspection_refusal(refused: Exception) -> Exception:
    """The gate's 401 and 403 as RFC 7662 section 2.3 says: both 401, a credential without
    enough privileges with `insufficient_scope`. Other refusals (415, 503) stay as they are."""
    if not isinstance(refused, GatewayError) or refused.status not in (401, 403):
        return refused
    if refused.status == 401:
        return _client_refused(refused)
    return OAuthError(401, "insufficient_scope", refused.message,
                      challenge=f'{REALM}, error="insufficient_scope"')


def revocation_refusal(refused: Exception) -> Exception:
    """The gate's 401 and 403 as RFC 7009 section 2.2.1 says (RFC 6749 section 5.2): no
    valid credential is 401 `invalid_client`; one that may not revoke is 400
    `unauthorized_client`."""
    if not isinstance(refused, GatewayError) or refused.status not in (401, 403):
        return refused
    if refused.status == 401:
        return _client_refused(refused)
    return OAuthError(400, "unauthorized_client", refused.message)


async def oauth_parameters(request: web.Request) -> dict[str, str]:
    """The request's parameters, empty ones dropped (RFC 6749 section 3.1: as if omitted).

    A form, as the RFCs say; a JSON object of strings is also read because a console
    session may only write JSON (a form can be posted by any web page: CSRF). 400
    `invalid_request`: another body, a parameter twice, two client credentials."""
    if request.headers.get("x-server-key") and request.headers.get("Authorization"):
        # RFC 6749 section 2.3: one authentication method per request.
        raise invalid_request("use one client authentication: x-server-key or Authorization")
    media_type = request.content_type
    if media_type == "application/json":
        return await _json_parameters(request)
    if media_type != FORM:
        raise invalid_request(f"the body must be {FORM}")
    return _form_parameters(await _read(request))


async def _read(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > request.client_max_size:
        raise too_large()  # declared too large: answer now
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None


def _form_parameters(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS, errors="strict")
    except ValueError:  # not UTF-8, a bad escape, too many fields
        raise invalid_request("the body is not a valid form") from None
    parameters: dict[str, str] = {}
    for name, value in pairs:
        if not value:
            continue
        if name in parameters:  # RFC 6749 section 3.1: never more than once
            shown = name if name in PARAMETERS else "a parameter"
            raise invalid_request(f"{shown} is given more than once")
        parameters[name] = value
    return parameters


async def _json_parameters(request: web.Request) -> dict[str, str]:
    try:
        body = await json_object(request)
    except GatewayError as exc:
        if exc.status != 400:
            raise
        raise invalid_request("the body is not a JSON object") from None
    parameters: dict[str, str] = {}
    for name in PARAMETERS:
        value = body.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise invalid_request(f"{name} must be a string")
        parameters[name] = value
    return parameters


def required(parameters: dict[str, str], name: str) -> str:
    value = parameters.get(name)
    if value is None:
        raise invalid_request(f"{name} is missing")
    return value

"""Reading and checking JSON bodies: every problem is a 400 naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from gateway.errors import GatewayError, bad_request

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object (an empty body is `{}` when `optional`)."""
    try:
        raw = await request.read()  # bounded by server.max_body_bytes (413 above it)
    except web.HTTPRequestEntityTooLarge:
        raise GatewayError(413, "request too large", close_connection=True) from None
    if not raw.strip() and optional:
        return {}
    try:
        # Deep nesting ends in RecursionError inside the C decoder, not a crash.
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body: expected a JSON object")
    return body


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def text_field(
    body: dict[str, Any], name: str, *, max_length: int, required: bool = False,
    min_length: int = 1, where: str | None = None,
) -> str | None:
    """A string field of `min_length`-`max_length` characters; the error names it dotted."""
    label = where or name
    value = body.get(name)
    if value is None:
        if required:
            raise field_error(label, "is required")
        return None
    if not isinstance(value, str):
        raise field_error(label, "must be a string")
    if not min_length <= len(value) <= max_length:
        raise field_error(label, f"must be {min_length}-{max_length} characters")
    if _CONTROL.search(value):  # ids travel on in headers: no line breaks, no NUL
        raise field_error(label, "must not contain control characters")
    return value


def field_error(field: str, problem: str) -> GatewayError:
    return GatewayError(
        400, f"{field} {problem}", detail=[{"field": field, "message": f"{field} {problem}"}]
    )

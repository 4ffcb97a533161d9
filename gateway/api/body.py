"""Reading and checking JSON bodies: every problem is a 400 naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from gateway.errors import GatewayError, bad_request

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # only an unpaired `\ud83d` escape makes one


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object (an empty body is `{}` when `optional`).

    Refused (400): not UTF-8 JSON, NaN/Infinity, a name twice in one object (parsers
    disagree on which one wins), a string with an unpaired surrogate (it cannot be
    stored, logged or sent on as UTF-8).
    """
    length = request.content_length
    if length is not None and length > request.client_max_size:
        # Declared too large: answer now rather than wait for a body that may never come.
        raise GatewayError(413, "request too large", close_connection=True)
    try:
        # Bounded by server.max_body_bytes (413 above it); a body that stops arriving
        # raises BodyTimeout here (408, server.body_timeout: gateway/protocol.py).
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise GatewayError(413, "request too large", close_connection=True) from None
    if not raw.strip() and optional:
        return {}
    try:
        # Deep nesting ends in RecursionError inside the C decoder, not a crash.
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant,
                          object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise field_error(exc.key[:50], "is given more than once") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body: expected a JSON object")
    _check_unicode(body)
    return body


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return body


def _check_unicode(body: dict[str, Any]) -> None:
    """400 naming the first field (dotted) whose name or text holds an unpaired surrogate."""
    stack: list[tuple[str, Any]] = [("body", body)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise field_error(where[:100], "must be valid Unicode (an unpaired surrogate)")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = key if where == "body" else f"{where}.{key}"
                if _SURROGATE.search(key):
                    raise field_error(where[:100], "has a name that is not valid Unicode")
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


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

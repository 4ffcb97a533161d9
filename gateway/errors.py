"""The contract's error body, one exception type for every error the gateway answers.

Handlers raise `GatewayError` (usually through the helpers below); one middleware
turns it, and aiohttp's own HTTP exceptions, into
`{"status": "error", "code": ..., "message": ...}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.store.db import StoreUnavailable

log = logging.getLogger("gateway.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Size limits share the generic 400000; rate limiting has its own code.
_SPECIAL_CODES = {408: 400000, 413: 400000, 414: 400000, 415: 400000, 431: 400000, 429: 400311}


def code_for_status(status: int) -> int:
    """The platform's numeric error code: 400 -> 400000, 401 -> 400100, ..., 5xx -> 500000."""
    if status in _SPECIAL_CODES:
        return _SPECIAL_CODES[status]
    if 400 <= status < 500:
        return 400000 + (status - 400) * 100
    return 500000


class GatewayError(Exception):
    """An answer of the contract's error table; `str()` is the message sent to the client."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: Mapping[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(message)
        self.close_connection = close_connection
        self.status = status
        self.message = message
        self.code = code_for_status(status) if code is None else code
        self.headers = dict(headers or {})
        self.detail = detail

    def response(self) -> web.Response:
        response = error_response(
            self.status, self.message, code=self.code, headers=self.headers, detail=self.detail
        )
        if self.close_connection:
            response.force_close()
        return response


def error_response(
    status: int,
    message: str,
    *,
    code: int | None = None,
    headers: Mapping[str, str] | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(status, message, code=code, detail=detail),
        content_type="application/json",
        headers=headers,
    )


def error_body(status: int, message: str, *, code: int | None = None,
               detail: list[dict[str, Any]] | None = None) -> bytes:
    """The contract's error JSON, as every listener sends it."""
    body: dict[str, Any] = {
        "status": "error",
        "code": code_for_status(status) if code is None else code,
        "message": message,
    }
    if detail:
        body["data"] = {"detail": detail}
    return json.dumps(body).encode()


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, message)


def unauthorized(message: str = "Unauthorized") -> GatewayError:
    return GatewayError(401, message)


def invalid_token() -> GatewayError:
    return GatewayError(401, "Invalid token")


def token_expired() -> GatewayError:
    return GatewayError(401, "token expired")


def permission_denied() -> GatewayError:
    return GatewayError(403, "Permission denied", code=400301)


def user_banned() -> GatewayError:
    return GatewayError(403, "User is global banned.", code=400312)


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, message, code=400300)


def not_found(message: str = "Not Found") -> GatewayError:
    return GatewayError(404, message)


def conflict(message: str) -> GatewayError:
    return GatewayError(409, message)


def too_large() -> GatewayError:
    # The rest of the body is still on its way: close rather than read it all.
    return GatewayError(413, "request too large", close_connection=True)


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, message)


# aiohttp raises these itself (routing, body limits); the contract wants its own texts.
_HTTP_EXCEPTION_MESSAGES = {
    404: "Not Found",
    405: "Method Not Allowed",
    413: "request too large",
    414: "URI too long",
    431: "request headers too large",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_EXCEPTION_MESSAGES.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(exc.status, message, headers=headers)
    except StoreUnavailable as exc:
        # Nothing was acknowledged: the client may retry (the store said why in the log).
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "store unavailable: try again shortly",
                              headers={"Retry-After": "1"})
    except (ConnectionResetError, web.RequestPayloadError) as exc:
        # The client went away or sent a broken body: nothing useful can be answered.
        log.info("client error on %s %s: %s", request.method, request.path, exc)
        return error_response(400, "request body could not be read")
    except Exception:
        # A bug, not bad input: log it with its trace, answer JSON without one.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error")

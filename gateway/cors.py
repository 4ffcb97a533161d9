"""CORS for browser apps calling the gateway from their own origins. Pure: no I/O.

`server.cors_origins` (API.md sections 4 and 5) is the whole configuration:

- `[]`: the gateway adds no CORS headers at all (an upstream's own pass untouched);
- `["https://app.example.com", ...]`: those origins, compared exactly on
  scheme://host[:port] after lower-casing scheme and host and dropping a default port
  (`HTTPS://App.Example.com:443` is `https://app.example.com`);
- `["*"]`: any well-formed origin.

The literal origin `null` (sandboxed iframes, `file:` pages, some redirects) is only
allowed when `"null"` itself is listed: `*` does not cover it, since any page can make
itself `null`.

An allowed origin is always echoed (never `*`) with `Access-Control-Allow-Credentials:
true`, so credentialed requests (cookies from `set-access-token-cookie`) work, and with
`Vary: Origin`. With `["*"]` that means every site may make credentialed calls and read
the answers: list the origins instead wherever cookies carry tokens.

API:

    policy = CorsPolicy(config.server.cors_origins)        # ValueError on a bad origin
    policy.enabled                                         # False for []
    policy.allows(origin) -> bool
    is_preflight(method, origin, access_control_request_method) -> bool
    policy.preflight_headers(origin, request_method, request_headers)
        -> dict[str, str] | None
    policy.response_headers(origin) -> dict[str, str]
    policy.apply(response_headers, origin) -> None          # merges into a multidict

Wiring notes for the caller:
- Answer preflights (`is_preflight`) before authentication and policy rules: browsers
  never send credentials on them. `preflight_headers` returns None for an origin or
  method we do not allow; answer such an OPTIONS without CORS headers (the browser then
  refuses the real request), except the `Vary` from `response_headers`.
- Requested headers outside the allowed set are left out of `Access-Control-Allow-
  Headers` rather than failing the preflight; the browser then refuses the request.
- On every other response, `apply` replaces whatever `Access-Control-*` headers the
  upstream sent with ours and adds `Origin` to `Vary`, also when the origin is unlisted
  or absent: a shared cache must not hand one origin's answer to another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from multidict import MutableMultiMapping

__all__ = [
    "ALLOWED_METHODS",
    "ALLOWED_REQUEST_HEADERS",
    "EXPOSED_HEADERS",
    "CorsPolicy",
    "is_preflight",
    "normalize_origin",
]

ALLOWED_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
ALLOWED_REQUEST_HEADERS: tuple[str, ...] = (
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "set-access-token-cookie",
    "X-Request-Id",
)
EXPOSED_HEADERS: tuple[str, ...] = ("X-Request-Id", "Warning", "Retry-After")
DEFAULT_MAX_AGE = 600

_ANY = "*"
_NULL = "null"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# scheme "://" host [":" port]: a browser's serialised origin, nothing more (no path,
# userinfo, query or fragment). Hosts are DNS-ish names or bracketed IPv6 literals.
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_MAX_ORIGIN = 1024  # well past any real origin; refuses giant headers before the regex
_VARY_PREFLIGHT = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


def normalize_origin(value: str) -> str | None:
    """`scheme://host[:port]`, lower-cased, default port dropped; None if not an origin.

    `null` is returned as is: callers decide whether it is allowed.
    """
    if value == _NULL:
        return _NULL
    if len(value) > _MAX_ORIGIN:
        return None
    match = _ORIGIN.fullmatch(value)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    host = match["host"].lower()
    if match["port"] is None:
        return f"{scheme}://{host}"
    port = int(match["port"])
    if port > 65535:
        return None
    if _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_preflight(method: str, origin: str | None, request_method: str | None) -> bool:
    """An OPTIONS with `Origin` and `Access-Control-Request-Method`: a CORS preflight."""
    return method == "OPTIONS" and origin is not None and request_method is not None


class CorsPolicy:
    """The CORS answers for one `server.cors_origins` list; built once, then read-only."""

    __slots__ = (
        "_allow_headers",
        "_any",
        "_expose",
        "_max_age",
        "_methods",
        "_origins",
    )

    def __init__(
        self,
        origins: Iterable[str],
        *,
        max_age: int = DEFAULT_MAX_AGE,
        allow_headers: Iterable[str] = ALLOWED_REQUEST_HEADERS,
        expose_headers: Iterable[str] = EXPOSED_HEADERS,
    ) -> None:
        listed: set[str] = set()
        any_origin = False
        for origin in origins:
            entry = origin.strip()
            if entry == _ANY:
                any_origin = True
                continue
            normal = normalize_origin(entry)
            if normal is None:
                raise ValueError(
                    f"not an origin: {origin!r} (expected scheme://host[:port] with no "
                    f'path, "*" or "null")'
                )
            listed.add(normal)
        if max_age < 0:
            raise ValueError(f"max_age must not be negative: {max_age}")
        self._any = any_origin
        self._origins = frozenset(listed)
        self._max_age = str(max_age)
        self._methods = ", ".join(ALLOWED_METHODS)
        self._allow_headers = {name.lower() for name in allow_headers}
        self._expose = ", ".join(expose_headers)

    def __repr__(self) -> str:
        shown = ("*",) if self._any else ()
        return f"CorsPolicy({(*shown, *sorted(self._origins))!r})"

    @property
    def enabled(self) -> bool:
        """False for `[]`: then no method here adds anything."""
        return self._any or bool(self._origins)

    def allows(self, origin: str | None) -> bool:
        """Whether a request with this `Origin` header value gets CORS headers."""
        if origin is None:
            return False
        normal = normalize_origin(origin)
        if normal is None:
            return False
        if normal in self._origins:
            return True
        # `*` covers any real origin, never the opaque `null` (that must be listed).
        return self._any and normal != _NULL

    def preflight_headers(
        self,
        origin: str | None,
        request_method: str | None,
        request_headers: str | None,
    ) -> dict[str, str] | None:
        """Headers for a 204 answer to a preflight; None if we do not allow it.

        `request_method` and `request_headers` are the `Access-Control-Request-Method`
        and `Access-Control-Request-Headers` values (several of the latter joined with
        ","). Methods compare case-sensitively, as browsers do; header names do not.
        """
        if request_method is None or request_method not in ALLOWED_METHODS:
            return None
        if origin is None or not self.allows(origin):
            return None
        headers = self._origin_headers(origin)
        headers["Access-Control-Allow-Methods"] = self._methods
        allowed = self._requested_headers(request_headers)
        if allowed:
            headers["Access-Control-Allow-Headers"] = ", ".join(allowed)
        headers["Access-Control-Max-Age"] = self._max_age
        # The answer depends on all three; a cache must keep them apart.
        headers["Vary"] = _VARY_PREFLIGHT
        return headers

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """CORS headers for an ordinary (non-preflight) response.

        Empty when CORS is off; only `Vary: Origin` for an absent or unlisted origin.
        `Vary` must be merged with any the response already has (`apply` does).
        """
        if not self.enabled:
            return {}
        if origin is None or not self.allows(origin):
            return {"Vary": "Origin"}
        headers = self._origin_headers(origin)
        if self._expose:
            headers["Access-Control-Expose-Headers"] = self._expose
        headers["Vary"] = "Origin"
        return headers

    def apply(self, headers: MutableMultiMapping[str], origin: str | None) -> None:
        """Put `response_headers(origin)` into a response's headers (a case-insensitive
        multidict such as aiohttp's `StreamResponse.headers`), in place.

        When CORS is on, the upstream's own `Access-Control-*` headers are dropped first
        (two `Access-Control-Allow-Origin` values make browsers refuse the response) and
        `Origin` is added to an existing `Vary` rather than replacing it.
        """
        if not self.enabled:
            return
        for name in {n for n in headers if n.lower().startswith("access-control-")}:
            del headers[name]
        ours = self.response_headers(origin)
        vary = ours.pop("Vary")
        for name, value in ours.items():
            headers[name] = value
        merged = _merge_vary(headers.getall("Vary", []), vary)
        if merged is not None:
            headers.popall("Vary", None)
            headers["Vary"] = merged

    def _origin_headers(self, origin: str) -> dict[str, str]:
        # The browser compares Allow-Origin with its own serialisation byte for byte, so
        # echo what it sent, not our normal form.
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
        }

    def _requested_headers(self, value: str | None) -> list[str]:
        if not value:
            return []
        allowed: list[str] = []
        seen: set[str] = set()
        for item in value.split(","):
            name = item.strip()
            key = name.lower()
            if key in self._allow_headers and key not in seen:
                seen.add(key)
                allowed.append(name)
        return allowed


def _merge_vary(values: Iterable[str], token: str) -> str | None:
    """One `Vary` value: `values` with `token` added; None if it is already covered."""
    existing = [part.strip() for value in values for part in value.split(",") if part.strip()]
    lowered = {part.lower() for part in existing}
    if "*" in lowered or token.lower() in lowered:
        return None
    return ", ".join([*existing, token])

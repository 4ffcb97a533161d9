"""Request-target normalisation, done once before policy matching and forwarding.

The policy matcher and the upstream must agree on which resource a request names.
Anything a client could use to make them disagree (dot segments, encoded slashes,
NUL, control characters) is refused rather than repaired; spelling differences that
RFC 3986 section 6.2.2 calls equivalent are made canonical instead.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# What RFC 3986 allows unencoded in a path (pchar and "/"), "%" aside.
_PATH_CHARS = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_HEX = frozenset(string.hexdigits)
# Most requests need no rewriting: only allowed characters, no "%", no "//", no "/.".
_PLAIN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
# "%25" followed by these would decode, in a second pass, to ".", "/", "\" or NUL.
_DOUBLE_ENCODED = frozenset({"2E", "2F", "5C", "00"})
# Overlong UTF-8 (on canonical, uppercase escapes): a longer-than-needed encoding of a
# code point, never valid UTF-8. Lax decoders read `%C0%AE` as ".", `%C0%AF` as "/".
_OVERLONG = re.compile(r"%C[01]%[89AB][0-9A-F]|%E0%[89][0-9A-F]|%F0%8[0-9A-F]")


class UnsafePath(ValueError):
    """The path is refused; `str(exc)` is a short reason fit for a log line."""


@dataclass(frozen=True, slots=True)
class PathOptions:
    """Which ambiguous spellings pass (config `paths:`); everything else is refused."""

    semicolons: bool = False  # `;` anywhere in the path (matrix / servlet parameters)
    trailing_dots: bool = False  # a segment ending in "." (`/audit-logs.`)
    encoded_slashes: bool = False  # `%2F` / `%5C`, then kept encoded, never decoded


STRICT = PathOptions()


def normalize_path(raw: str, options: PathOptions = STRICT) -> str:
    """Canonical, still percent-encoded form of a raw request path (no query string).

    - refuses: no leading "/", NUL, control characters, backslash, "?" or "#", malformed
      or double-encoded escapes, encoded "/" or "\\", overlong UTF-8 (`%c0%ae`), and
      "." / ".." segments in any spelling (raw, `%2e%2e`, `%2E.`, or `..;param`);
    - decodes escaped unreserved characters (`/ap%69` -> `/api`) and uppercases the hex
      of the other escapes (`%c3%a9` -> `%C3%A9`), so a literal rule cannot be dodged;
    - percent-encodes characters that may not appear raw (space, `|`, non-ASCII as UTF-8);
    - collapses repeated slashes (`//a///b` -> `/a/b`); a trailing slash is kept;
    - by `options`: refuses `;`, segments ending in ".", encoded slashes (the default).
    """
    if not raw.startswith("/"):
        raise UnsafePath("path must start with /")
    if _PLAIN.fullmatch(raw) and "//" not in raw and "/." not in raw and ";" not in raw:
        if not options.trailing_dots and (raw.endswith(".") or "./" in raw):
            raise UnsafePath("segment ending in '.' in path")
        return raw
    decoded = _canonical_escapes(raw, options.encoded_slashes)
    if "%" in decoded and _OVERLONG.search(decoded):
        raise UnsafePath("overlong UTF-8 in path")
    segments = [s for s in decoded.split("/") if s]
    for segment in segments:
        # "..;x" is treated as ".." by servlet-style upstreams (path parameters).
        if segment.split(";", 1)[0] in (".", ".."):
            raise UnsafePath("dot segment in path")
        if not options.trailing_dots and segment.endswith("."):
            raise UnsafePath("segment ending in '.' in path")
    if not options.semicolons and ";" in decoded:
        raise UnsafePath("';' in path")
    if not segments:
        return "/"
    trailing = "/" if decoded.endswith("/") else ""
    return "/" + "/".join(segments) + trailing


def _canonical_escapes(raw: str, keep_slashes: bool = False) -> str:
    out: list[str] = []
    i, end = 0, len(raw)
    while i < end:
        char = raw[i]
        if char == "%":
            out.append(_escape(raw, i, keep_slashes))
            i += 3
            continue
        code = ord(char)
        if code == 0:
            raise UnsafePath("NUL byte in path")
        if code < 0x20 or code == 0x7F:
            raise UnsafePath("control character in path")
        if char == "\\":
            raise UnsafePath("backslash in path")
        if char in "?#":
            raise UnsafePath("query or fragment delimiter in path")
        if char in _PATH_CHARS:
            out.append(char)
        else:
            out.append(_encode(char))
        i += 1
    return "".join(out)


def _escape(raw: str, i: int, keep_slashes: bool = False) -> str:
    """Canonical form of the escape starting at raw[i] (which is "%")."""
    pair = raw[i + 1 : i + 3]
    if len(pair) != 2 or not _HEX.issuperset(pair):
        raise UnsafePath("malformed percent-encoding")
    code = int(pair, 16)
    char = chr(code)
    if char in _UNRESERVED:
        return char
    if code == 0:
        raise UnsafePath("NUL byte in path")
    if char in "/\\":
        if keep_slashes:  # forwarded as sent; the matcher sees one segment, not two
            return "%" + pair.upper()
        raise UnsafePath("encoded slash or backslash in path")
    if code < 0x20 or code == 0x7F:
        raise UnsafePath("control character in path")
    if code == 0x25 and raw[i + 3 : i + 5].upper() in _DOUBLE_ENCODED:
        raise UnsafePath("double-encoded character in path")
    return "%" + pair.upper()


def _encode(char: str) -> str:
    try:
        data = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise UnsafePath("undecodable character in path") from None
    return "".join(f"%{byte:02X}" for byte in data)


def normalize_host(host: str) -> str:
    """`API.EU.Amity.co:443` -> `api.eu.amity.co`; `[::1]:8443` -> `::1`.

    Lowercase, port dropped, IPv6 brackets dropped, one trailing dot (the DNS root)
    dropped. A malformed bracketed host is returned lowercased and unmatched by any rule.
    """
    text = host.strip().lower()
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            return text
        text = text[1:close]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    if text.endswith("."):
        text = text[:-1]
    return text

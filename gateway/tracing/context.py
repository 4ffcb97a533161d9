"""W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/): parsed and
formatted here, pure functions.

`version-traceid-parentid-flags`, lowercase hex, 2-32-16-2 digits. A value is kept
only when well-formed: version 00 is exactly 55 characters; a later version (anything
but `ff`) is read by its first 55 characters when what follows starts with `-`, as the
spec's forward-compatibility rules say, and answered in version 00; all-zero trace or
parent ids, uppercase hex and any other spelling are not a trace to join.

Checked by slicing and one `bytes.translate` (a C table lookup; `str.translate` and a
regex both cost more here): it is the only tracing work on the request path when spans
are not exported.
"""

from __future__ import annotations

from typing import NamedTuple

VERSION = "00"
LENGTH = 55  # `00-` + 32 + `-` + 16 + `-` + 2
# A later version may append fields; past this a value is not parsed (nor is a huge one
# scanned) and the request starts a trace of its own.
MAX_LENGTH = 512
_HEX_DIGITS = b"0123456789abcdef"
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
_SAMPLED_DIGITS = frozenset("13579bdf")  # the flags' last hex digit, sampled bit set
_WHITESPACE = " \t"


class TraceParent(NamedTuple):
    """The caller's place in a trace, from a well-formed `traceparent`."""

    trace_id: str  # 32 lowercase hex digits, not all zeros
    parent_id: str  # 16 lowercase hex digits, not all zeros: the caller's span
    sampled: bool  # the caller's `sampled` flag (the other flags are not propagated)


def parse_traceparent(value: str) -> TraceParent | None:
    """The trace context in a `traceparent` value, or None when it is not well-formed."""
    if len(value) != LENGTH:
        # Optional whitespace around a field value (RFC 9110 5.5): aiohttp strips it, the
        # data plane's parser keeps trailing blanks; both must read the same value.
        value = value.strip(_WHITESPACE)
    size = len(value)
    if size < LENGTH or size > MAX_LENGTH:
        return None
    head = value if size == LENGTH else value[:LENGTH]
    if head[2] != "-" or head[35] != "-" or head[52] != "-" or not head.isascii() or \
            head.encode().translate(None, _HEX_DIGITS) != b"---":
        return None
    version = head[:2]
    if version == "ff":
        return None
    if size != LENGTH and (version == VERSION or value[LENGTH] != "-"):
        return None  # version 00 has nothing after the flags; later ones a `-` first
    trace_id = head[3:35]
    parent_id = head[36:52]
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return TraceParent(trace_id, parent_id, head[54] in _SAMPLED_DIGITS)


def format_traceparent(trace_id: str, span_id: str, sampled: bool) -> str:
    """A version-00 `traceparent`: `span_id` becomes the receiver's parent id."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"

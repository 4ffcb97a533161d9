"""What goes to an upstream, whichever of its region's upstreams is tried."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass

from multidict import CIMultiDict

from gateway.proxy.upstream_client import request_head
from gateway.proxy.upstreams import Upstream


@dataclass(slots=True, init=False)
class OutboundRequest:
    """Method, target (normalised path and raw query), the filtered headers with the
    caller's identity, and the body: held whole (bytes), streamed from the client, or
    none."""

    method: str
    target: str
    headers: CIMultiDict[str]
    body: bytes | AsyncIterable[bytes] | None

    # __init__ written out (init=False): see gateway.auth.principal.Principal.
    def __init__(self, method: str, target: str, headers: CIMultiDict[str],
                 body: bytes | AsyncIterable[bytes] | None) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body

    @property
    def replayable(self) -> bool:
        """Whether it can be sent again: its body is held whole, or there is none."""
        return self.body is None or isinstance(self.body, bytes)

    @property
    def body_bytes(self) -> bytes | None:
        """The body when it is held whole (small), else None."""
        return self.body if isinstance(self.body, bytes) else None

    def head_for(self, upstream: Upstream) -> bytes:
        """The request head for `upstream` (its Host, its path prefix)."""
        return request_head(self.method, upstream.path_prefix + self.target, upstream.host,
                            self.headers, self.body_bytes)

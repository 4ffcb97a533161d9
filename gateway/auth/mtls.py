"""Client-certificate pinning for networks with mTLS on (API.md sections 1 and 3)."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import forbidden, unauthorized
from gateway.keys import AUTH_STATE
from gateway.requestinfo import INFO


def require_pinned_certificate(request: web.Request, network_id: str) -> None:
    """Nothing when the network has mTLS off or the request's certificate is one of its
    current, unexpired uploads; else 401 (none presented) or 403 (not one of them)."""
    state = request.app[AUTH_STATE]
    if not state.requires_client_certificate(network_id):
        return
    fingerprint = request[INFO].client_cert
    if fingerprint is None:
        raise unauthorized("client certificate required")
    not_after = state.pinned_until(network_id, fingerprint)
    # An expired certificate can still be on a connection opened before its notAfter.
    if not_after is None or state.clock() > not_after:
        raise forbidden("client certificate not allowed")

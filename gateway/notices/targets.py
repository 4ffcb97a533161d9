"""Which URLs a subscription may name, and which addresses a delivery may reach.

An admin of one network chooses the URL; the gateway makes the request from inside its
own network. Unless `notices.allow_private_targets` is set, a delivery must therefore
reach a public address only: names are checked as they are resolved, by the resolver
of the delivery client itself (so a name cannot resolve to a public address when
checked and a private one when connected), and address literals when the URL is
subscribed and again before each attempt (aiohttp does not resolve them).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_URL = 2000
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


class TargetRefused(OSError):
    """A delivery address outside what `notices.allow_private_targets` permits."""


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` cannot be subscribed, or None."""
    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    if _UNSAFE.search(url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "must be a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if parts.fragment:
        return "must not have a fragment (#...)"
    if port == 0:
        return "must name a valid port"
    if not allow_private and not _public_literal(parts.hostname):
        return "must not point at a loopback, private, link-local or reserved address"
    return None


def literal_refused(url: str, *, allow_private: bool) -> str | None:
    """Before an attempt: the reason to refuse a URL whose host is a non-public address."""
    host = urlsplit(url).hostname or ""
    if allow_private or _public_literal(host):
        return None
    return f"{host} is not a public address (notices.allow_private_targets is off)"


def _public_literal(host: str) -> bool:
    """False for an address literal that is not public; names pass (checked on resolving)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower().rstrip(".") != "localhost"
    return is_public(address)


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return address.is_global and not address.is_multicast


class PublicResolver(AbstractResolver):
    """The system resolver, keeping only public addresses unless private ones are allowed."""

    def __init__(self, allow_private: Callable[[], bool]) -> None:
        self._resolver = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if self._allow_private():
            return results
        public = [r for r in results
                  if is_public(ipaddress.ip_address(r["host"].partition("%")[0]))]
        if not public:
            raise TargetRefused(
                f"{host} resolves to no public address (notices.allow_private_targets is off)"
            )
        return public

    async def close(self) -> None:
        await self._resolver.close()

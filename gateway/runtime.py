"""The settings a running gateway serves with, swapped whole on SIGHUP.

Everything else in the application is fixed at start-up; this holder is the one
thing a reload replaces, in a single assignment, so a request sees either the old
settings or the new ones, never a mix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from gateway.config import Config, ConfigError, load_config
from gateway.cors import CorsPolicy
from gateway.policy import PathOptions, PolicySet, load_policies
from gateway.policy.routes import Endpoint, RouteTable
from gateway.proxy.headers import TrustedProxies
from gateway.proxy.upstreams import RegionPool, build_pools

log = logging.getLogger("gateway.reload")

# Keys a reload cannot change without new sockets or a new store connection.
# tokens.issuer: the token service signs with the issuer it started with.
# tracing: the span exporter is set up once, at start.
_RESTART_ONLY = ("server.http", "server.https", "server.workers", "server.hold_writes_from",
                 "store", "tokens.issuer", "tracing")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Settings:
    config: Config
    policies: PolicySet
    routes: RouteTable[Handler]
    path_options: PathOptions
    pools: Mapping[str, RegionPool]
    trusted_proxies: TrustedProxies
    client_cert_header: str | None  # believed from trusted proxies only, never forwarded
    cors: CorsPolicy


def load_settings(config: Config, endpoints: Sequence[Endpoint[Handler]] = ()) -> Settings:
    """Everything derived from config.yaml that a request needs (blocking: file reads),
    the route table compiled from the policies and the built-in `endpoints` together.

    Raises ConfigError, or PolicyError (a ValueError) naming the file, rule and field.
    """
    policies = load_policies(config.policies)
    paths = config.paths
    return Settings(
        config=config,
        policies=policies,
        routes=RouteTable(policies, endpoints,
                          case_sensitive=paths.letter_case == "sensitive"),
        path_options=PathOptions(
            semicolons=paths.semicolons == "forward",
            trailing_dots=paths.trailing_dots == "forward",
            encoded_slashes=paths.encoded_slashes == "forward",
        ),
        pools=build_pools(config.regions, config.proxy),
        trusted_proxies=TrustedProxies(config.server.trusted_proxies),
        client_cert_header=config.mtls.client_cert_header,
        cors=CorsPolicy(config.server.cors_origins),
    )


class Runtime:
    def __init__(self, settings: Settings, endpoints: Sequence[Endpoint[Handler]] = ()) -> None:
        self.current = settings
        self._endpoints = tuple(endpoints)
        # Set on SIGTERM: /readyz answers 503 so load balancers move away while requests
        # are still served, keep-alive included, for server.drain_grace.
        self.draining = False

    async def reload(self) -> bool:
        """Re-read config.yaml and what it names; keep serving the old settings if invalid."""
        path = self.current.config.path
        try:
            config = await asyncio.to_thread(load_config, path)
            settings = await asyncio.to_thread(load_settings, config, self._endpoints)
        except (ConfigError, ValueError) as exc:
            log.error("reload refused, still serving the previous configuration: %s", exc)
            return False
        for key in _RESTART_ONLY:
            if _section(self.current.config, key) != _section(config, key):
                log.warning("reload: %s changed; it takes effect after a restart", key)
        self.current = settings
        log.info("configuration reloaded from %s", path)
        return True


def _section(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value

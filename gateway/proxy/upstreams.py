"""Each region's upstreams: round-robin, with a cool-down for one that refuses connections."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from gateway.config import ProxyConfig, Region, RegionsConfig
from gateway.proxy.upstream_client import Origin, host_header, origin_of


@dataclass
class Upstream:
    url: URL
    label: str
    down_until: float = 0.0
    # Worked out once, not per request: where to connect, the `Host` sent, and the
    # path the configured URL puts before every request's (`http://h:8080/base`).
    origin: Origin = ("", "", 0)
    host: str = ""
    path_prefix: str = ""

    @classmethod
    def of(cls, label: str) -> Upstream:
        url = URL(label)
        authority_and_path = label.partition("://")[2]
        slash = authority_and_path.find("/")
        return cls(url, label, origin=origin_of(url), host=host_header(url),
                   path_prefix=authority_and_path[slash:] if slash >= 0 else "")


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


class RegionPool:
    def __init__(
        self,
        region: Region,
        proxy: ProxyConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = region.name
        self.upstreams = tuple(Upstream.of(url) for url in region.upstreams)
        self.timeouts = Timeouts(
            connect=region.connect_timeout or proxy.connect_timeout,
            read=region.read_timeout or proxy.read_timeout,
        )
        self.client_timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeouts.connect, sock_read=self.timeouts.read
        )
        self._cooldown = proxy.upstream_cooldown
        self._clock = clock
        self._turn = itertools.count()

    def candidates(self) -> list[Upstream]:
        """Every upstream, next in turn first; those cooling down go last (never nowhere)."""
        if len(self.upstreams) == 1:
            return list(self.upstreams)
        start = next(self._turn) % len(self.upstreams)
        ordered = self.upstreams[start:] + self.upstreams[:start]
        now = self._clock()
        return sorted(ordered, key=lambda upstream: upstream.down_until > now)

    def mark_down(self, upstream: Upstream) -> None:
        upstream.down_until = self._clock() + self._cooldown


def build_pools(regions: RegionsConfig, proxy: ProxyConfig) -> Mapping[str, RegionPool]:
    """A pool per region, plus `<region>:mqtt` where the region names MQTT upstreams."""
    pools = {name: RegionPool(region, proxy) for name, region in regions.regions.items()}
    for name, region in regions.regions.items():
        if region.mqtt_upstreams:
            mqtt = dataclasses.replace(region, upstreams=region.mqtt_upstreams)
            pools[mqtt_pool(name)] = RegionPool(mqtt, proxy)
    return pools


def mqtt_pool(region: str) -> str:
    return f"{region}:mqtt"

"""One real gateway process and one recording upstream for the whole catalogue module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.catalogue import Ctx
from tests.hostile.harness import HostileGateway, RecordingUpstream


@dataclass
class System:
    gateway: HostileGateway
    upstream: RecordingUpstream
    ctx: Ctx
    routes: frozenset[tuple[str, str]]  # (METHOD, path) the gateway serves itself

    def serves(self, method: str, path: str) -> bool:
        return (method, path) in self.routes or ("*", path) in self.routes


def builtin_routes(config_path: Path) -> frozenset[tuple[str, str]]:
    """The gateway's own endpoints, as the route table knows them (nothing is started)."""
    from gateway.app import ENDPOINTS

    return frozenset((method, endpoint.path) for endpoint in ENDPOINTS
                     for method in endpoint.methods)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    upstream = RecordingUpstream()
    gateway = HostileGateway(tmp_path_factory.mktemp("hostile"), upstream)
    try:
        seeded = gateway.seed()
        gateway.start()
        ctx = Ctx(seeded, gateway.get_json("/.well-known/jwks.json"))
        yield System(gateway, upstream, ctx, builtin_routes(gateway.config_path))
    finally:
        code = gateway.stop()
        upstream.close()
        assert code in (0, None), f"gateway exited with {code}:\n{gateway.log()[-3000:]}"

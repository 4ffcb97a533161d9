"""Differential: every request shape of the hostile catalogue, sent to a gateway with the
data plane and to one without it (every request through aiohttp's server), reaches the
upstream identically, or is refused by both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.hostile.catalogue import CASES, Case, Ctx
from tests.hostile.harness import HostileGateway, RecordingUpstream, Seen, exchange

# Set per request and per hop: they differ between any two gateways (traceparent carries
# each gateway's own span id; tests/tracing checks what it holds).
_VARYING = {b"x-request-id", b"host", b"x-forwarded-for", b"date", b"traceparent"}


@dataclass
class Pair:
    plane: HostileGateway
    plain: HostileGateway
    plane_upstream: RecordingUpstream
    plain_upstream: RecordingUpstream
    ctx: Ctx


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    plane_upstream, plain_upstream = RecordingUpstream(), RecordingUpstream()
    plane = HostileGateway(tmp_path_factory.mktemp("plane"), plane_upstream)
    plain = HostileGateway(tmp_path_factory.mktemp("plain"), plain_upstream, data_plane=False)
    try:
        seeded = plane.seed()
        # The same store content for both: copy the seeded SQLite file and keys.
        import shutil

        shutil.copytree(plane.folder / "var", plain.folder / "var", dirs_exist_ok=True)
        shutil.copytree(plane.folder / "certs", plain.folder / "certs", dirs_exist_ok=True)
        plane.start()
        plain.start()
        ctx = Ctx(seeded, plane.get_json("/.well-known/jwks.json"))
        yield Pair(plane, plain, plane_upstream, plain_upstream, ctx)
    finally:
        for gateway in (plane, plain):
            gateway.stop()
        plane_upstream.close()
        plain_upstream.close()


def _received(seen: list[Seen]) -> list[tuple[str, bytes, list[tuple[bytes, bytes]], bytes]]:
    return [(s.method, s.target,
             sorted((k.lower(), v) for k, v in s.headers if k.lower() not in _VARYING),
             s.body) for s in seen]


# Cases that depend on time or on the store changing (logins, bodies that create users)
# are compared on what reaches the upstream only; all others on the answer's status too.
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_upstream_sees_the_same_request(case: Case, pair: Pair) -> None:
    data = case.request(pair.ctx)
    pair.plane_upstream.take()
    pair.plain_upstream.take()
    through_plane = exchange(pair.plane.port, data)
    through_plain = exchange(pair.plain.port, data)
    plane_seen, _ = pair.plane_upstream.take()
    plain_seen, _ = pair.plain_upstream.take()
    assert _received(plane_seen) == _received(plain_seen)
    statuses = [a.status for a in through_plane.answers]
    assert statuses == [a.status for a in through_plain.answers], (
        through_plane.raw[:300], through_plain.raw[:300])

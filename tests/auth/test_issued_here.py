"""`TokenService.issued_here`: whether a bearer names one of the gateway's keys, which
decides that it is never forwarded upstream, on any route (signature not checked)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from gateway.auth.tokens import TokenService
from tests.auth.test_verified_cache_memory import _service


def _segment(header: object) -> str:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
async def minted() -> tuple[TokenService, str]:
    now = time.time()
    service = _service(now)
    token, _ = await service.issue(kind="access", network_id="n1", subject="user-1",
                                   ttl=3600, now=now)
    return service, token


def _variants(token: str, service: TokenService) -> list[tuple[str, str, bool]]:
    header, payload, signature = token.split(".")
    (kid,) = service.ring._keys
    return [
        ("the token as issued", token, True),
        ("its payload garbled (the header still names our key)",
         f"{header}.%%%.{signature}", True),
        ("a header naming a key we do not have",
         f"{_segment({'alg': 'ES256', 'kid': 'not-ours'})}.{payload}.{signature}", False),
        ("a header with no kid", f"{_segment({'alg': 'ES256'})}.{payload}.{signature}", False),
        ("a kid that is not a string",
         f"{_segment({'alg': 'ES256', 'kid': 7})}.{payload}.{signature}", False),
        ("a header that is a JSON list", f"{_segment([kid])}.{payload}.{signature}", False),
        ("a header that is not JSON", f"{_segment(b'{kid')}.{payload}.{signature}", False),
        ("a header that is not base64url", f"@@@.{payload}.{signature}", False),
        ("a deeply nested header (2,500 brackets)",
         f"{_segment(b'[' * 2500)}.{payload}.{signature}", False),
        ("a header longer than any of ours",
         f"{_segment({'alg': 'ES256', 'kid': kid, 'x': 'y' * 600})}.{payload}.{signature}",
         False),
        ("two segments", f"{header}.{payload}", False),
        ("four segments", f"{token}.x", False),
        ("not ASCII", f"{header}.{payload}.{signature}é", False),
        ("longer than any token", f"{header}.{payload}.{'A' * 5000}", False),
    ]


async def test_which_bearers_name_one_of_the_gateways_keys(
        minted: tuple[TokenService, str]) -> None:
    service, token = minted
    for label, bearer, expected in _variants(token, service):
        # Twice: the second answer comes from the remembered header.
        assert [service.issued_here(bearer), service.issued_here(bearer)] == \
            [expected, expected], label


async def test_a_retired_key_no_longer_counts(minted: tuple[TokenService, str]) -> None:
    service, token = minted
    garbled = token.rsplit(".", 1)[0] + ".x"  # not in the verified cache
    assert service.issued_here(garbled)
    service.ring._keys = {}  # the key is gone from the ring
    assert not service.issued_here(garbled)

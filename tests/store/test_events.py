"""Feed events: every kind round-trips through its stored form, and the stored form is
the one earlier versions wrote (an old entry still decodes)."""

from __future__ import annotations

import json

import pytest

from gateway.store.events import (
    CertificateAdded,
    CertificateDeleted,
    ConsoleEnded,
    Event,
    KeyRevoked,
    KeysRotated,
    NetworkChanged,
    SettingUpdated,
    TokensRevoked,
    TokensSuperseded,
    UserBanned,
    UserUnbanned,
    decode,
    encode,
)

EVENTS: list[Event] = [
    TokensRevoked("n1", (("j1", 1.5e9), ("j2", 1.6e9))),
    TokensSuperseded("n1", (("j3", 1.7e9),)),
    UserBanned("n1", "alice"),
    UserUnbanned("n1", "alice"),
    ConsoleEnded("n1", ("h1", "h2")),
    NetworkChanged("n1", secure=True, mtls=False, created=True, region="eu"),
    NetworkChanged("n1", secure=True, mtls=True),
    CertificateAdded("n1", "ab" * 32, 1.9e9),
    CertificateDeleted("n1", "ab" * 32),
    KeysRotated("k2"),
    KeyRevoked("k1", "k3"),
    KeyRevoked("k1", None),
    SettingUpdated("n1", "push"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip_through_json(event: Event) -> None:
    kind, network_id, payload = encode(event)
    stored = json.loads(json.dumps(payload))
    assert decode(kind, network_id, stored) == event


@pytest.mark.parametrize(("kind", "network_id", "payload", "event"), [
    ("tokens.revoked", "n", {"tokens": [["j", 12]]}, TokensRevoked("n", (("j", 12.0),))),
    ("user.banned", "n", {"userId": "u"}, UserBanned("n", "u")),
    ("network.updated", "n", {"secure": True, "mtls": True}, NetworkChanged("n", True, True)),
    ("console.ended", "n", {"sessions": ["h"]}, ConsoleEnded("n", ("h",))),
])
def test_entries_written_before_the_types_decode(kind: str, network_id: str,
                                                 payload: dict[str, object],
                                                 event: Event) -> None:
    assert decode(kind, network_id, payload) == event


def test_unknown_kinds_are_skipped() -> None:
    assert decode("test.entry", None, {"i": 1}) is None
    assert decode("user.banned", None, {"userId": "u"}) is None  # no network: meaningless

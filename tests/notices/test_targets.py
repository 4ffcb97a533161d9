"""Where deliveries may go: private and reserved addresses are refused unless allowed,
for literals when subscribing and before each attempt, and for names as they resolve;
the signing helper agrees with an independent reading of docs/WEBHOOKS.md; the
`notices:` settings are checked at start-up."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import aiohttp
import pytest

from gateway.config import ConfigError, NoticesConfig, Seconds, load_config
from gateway.notices.delivery import backoff
from gateway.notices.signing import signed_headers, verify
from gateway.notices.targets import PublicResolver, TargetRefused, literal_refused, url_problem
from gateway.testing.support import write_config

PRIVATE = [
    "http://127.0.0.1:8080/h", "http://localhost/h", "http://LOCALHOST./h", "http://10.1.2.3/",
    "http://172.16.0.1/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/", "http://[fe80::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/", "http://100.64.0.1/", "http://192.0.2.1/", "http://224.0.0.1/",
]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_literals_are_refused_unless_allowed(url: str) -> None:
    assert url_problem(url, allow_private=False) == (
        "must not point at a loopback, private, link-local or reserved address")
    assert url_problem(url, allow_private=True) is None
    assert literal_refused(url, allow_private=False) is not None
    assert literal_refused(url, allow_private=True) is None


@pytest.mark.parametrize("url", ["https://hooks.example.com/a?b=c", "http://93.184.215.14:8080/",
                                 "https://[2606:4700::1111]/x"])
def test_public_urls_pass(url: str) -> None:
    assert url_problem(url, allow_private=False) is None
    assert literal_refused(url, allow_private=False) is None


async def test_names_resolving_to_private_addresses_are_refused_at_connect() -> None:
    allowed = False
    resolver = PublicResolver(lambda: allowed)
    try:
        with pytest.raises(TargetRefused):
            await resolver.resolve("localhost", 80)
        allowed = True
        assert {r["host"] for r in await resolver.resolve("localhost", 80)} & {"127.0.0.1", "::1"}
    finally:
        await resolver.close()


async def test_the_delivery_client_cannot_reach_a_private_name() -> None:
    connector = aiohttp.TCPConnector(resolver=PublicResolver(lambda: False))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await session.post("http://localhost:9/h", data=b"{}")
    assert isinstance(raised.value.os_error, TargetRefused)


def test_signature_matches_an_independent_computation() -> None:
    body = b'{"id":"dlv_1","type":"webhook.test"}'
    headers = signed_headers("whsec_abc", 1_700_000_000, body, "dlv_1", "webhook.test")
    mac = hmac.new(b"whsec_abc", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Gateway-Signature"] == f"sha256={mac}"
    assert headers["X-Gateway-Timestamp"] == "1700000000"
    assert headers["X-Gateway-Delivery"] == "dlv_1"
    assert verify("whsec_abc", headers, body, now=1_700_000_100)
    assert not verify("whsec_abc", headers, body, now=1_700_000_301)  # replayed later
    assert not verify("whsec_abd", headers, body, now=1_700_000_000)
    assert not verify("whsec_abc", headers, body + b" ", now=1_700_000_000)
    older = {**headers, "X-Gateway-Timestamp": "1699999999"}
    assert not verify("whsec_abc", older, body, now=1_700_000_000)  # the stamp is signed


def test_backoff_doubles_up_to_its_bound_and_is_spread() -> None:
    settings = NoticesConfig()  # 10s doubled, at most 1h
    assert [backoff(n, settings, 0.999999) for n in (1, 2, 3)] == pytest.approx([10, 20, 40])
    assert backoff(1, settings, 0.0) == 5.0
    assert backoff(30, settings, 0.999999) == pytest.approx(3600)
    assert backoff(10_000, settings, 0.5) == pytest.approx(2700)


@pytest.mark.parametrize(("notices", "message"), [
    ({"delivery_timeout": "0"}, "notices.delivery_timeout: got 0, expected more than 0"),
    ({"retry_initial": "1h", "retry_max": "1m"}, "notices.retry_max: got 60s, expected at least"),
    ({"max_attempts": 0}, "notices.max_attempts: got 0, expected at least 1"),
    ({"expiry_warning": "soon"}, "notices.expiry_warning: got 'soon', expected a duration"),
    ({"allow_private_targets": "yes"}, "notices.allow_private_targets: got 'yes', expected"),
    ({"colour": "red"}, "unknown key 'notices.colour'"),
])
def test_bad_settings_stop_start_up(tmp_path: Path, notices: dict[str, object],
                                    message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        load_config(write_config(tmp_path, {"notices": notices}), environ={})


def test_defaults(tmp_path: Path) -> None:
    notices = load_config(write_config(tmp_path), environ={}).notices
    assert notices == NoticesConfig()
    assert notices.expiry_warning == Seconds(30 * 86400) and not notices.allow_private_targets
    overridden = load_config(write_config(tmp_path),
                             environ={"GATEWAY_NOTICES_EXPIRY_WARNING": "7d"}).notices
    assert overridden.expiry_warning == Seconds(7 * 86400)

"""Console login abuse, against a real gateway in this process: the bounded password pool,
the limits per username, address and prefix, folded audit entries, Secure cookies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.auth.password_pool import KNOWN
from gateway.auth.passwords import hash_password
from gateway.keys import LOGIN_LIMITER, RUNTIME
from gateway.store import Network
from gateway.testing.support import REPO, Clock, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import Gateway, error
from tests.proxy.conftest import in_process_gateway

PASSWORD = "s3cret"


@asynccontextmanager
async def gateway(tmp_path: Path, clock: Clock, *, https: bool = False,
                  **sections: dict[str, Any]) -> AsyncIterator[Gateway]:
    """A gateway whose loopback peer is a trusted proxy, so X-Forwarded-For names clients."""
    server: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": free_port()},
        "trusted_proxies": ["127.0.0.1/32"],
        **({} if https else {"https": None}),
        **sections.pop("server", {}),
    }
    async with running_upstream("sg") as upstream:
        config = write_config(tmp_path, {
            "server": server,
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
            **sections,
        })
        async with in_process_gateway(config, clock=clock) as (url, app), \
                aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            yield Gateway(url, app, session, upstream)


async def _admin(gw: Gateway, username: str = "ann") -> Network:
    network = await gw.network()
    await gw.store.create_admin(network.id, username, "admin", hash_password(PASSWORD, log2_n=10))
    return network


async def _login(gw: Gateway, network: Network, username: str = "ann",
                 password: str = PASSWORD, client: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    sent = {"x-api-key": network.api_key, **(headers or {})}
    if client is not None:
        sent["X-Forwarded-For"] = client
    return await gw.call("POST", "/console/v1/login", headers=sent,
                         json={"username": username, "password": password})


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


def _limited(status: int, body: Any, response: Any) -> bool:
    return (status, body) == (429, error(429, "RateLimit Exceed.")) \
        and int(response.headers["Retry-After"]) >= 1


# -- 1. the bounded pool ----------------------------------------------------------------


async def test_a_full_pool_answers_429_and_a_clean_record_goes_first(
    tmp_path: Path, clock: Clock
) -> None:
    async with gateway(tmp_path, clock, limits={"hash_concurrency": 1, "hash_queue": 1}) as gw:
        network = await _admin(gw)
        pool = gw.app[LOGIN_LIMITER].pool
        # A client with failures on record: its next attempt waits with a worse priority.
        assert (await _login(gw, network, "nobody", "x", client="203.0.113.9"))[0] == 401
        async with pool.slot():  # every password check now waits for this one
            repeat = asyncio.create_task(_login(gw, network, "nobody", "x",
                                                client="203.0.113.9"))
            await _until(lambda: pool.waiting == 1)
            # Line full; an attempt no better than the waiter is refused at once ...
            assert _limited(*await _login(gw, network, "other", "x", client="203.0.113.9"))
            # ... while a clean one takes the waiter's place, which is refused.
            clean = asyncio.create_task(_login(gw, network, client="198.51.100.20"))
            assert _limited(*await repeat)
            await _until(lambda: pool.waiting == 1)
        status, body, _ = await clean
        assert status == 200 and body["role"] == "admin"
        assert pool.refused == 2


async def test_a_recent_success_from_the_same_address_goes_ahead_of_strangers(
    tmp_path: Path, clock: Clock
) -> None:
    async with gateway(tmp_path, clock, limits={"hash_concurrency": 1}) as gw:
        network = await _admin(gw)
        pool = gw.app[LOGIN_LIMITER].pool
        assert (await _login(gw, network, client="192.0.2.10"))[0] == 200
        async with AsyncExitStack() as general:
            await general.enter_async_context(pool.slot())
            async with pool.slot(lambda: KNOWN):  # both places taken
                stranger = asyncio.create_task(_login(gw, network, "nobody", "x",
                                                      client="198.51.100.7"))
                await _until(lambda: pool.waiting == 1)
                known = asyncio.create_task(_login(gw, network, client="192.0.2.10"))
                await _until(lambda: pool.waiting == 2)
                await general.aclose()  # the general place goes to the one that came second
                done, _pending = await asyncio.wait({stranger, known},
                                                    return_when=asyncio.FIRST_COMPLETED)
                assert done == {known} and (await known)[0] == 200
        assert (await stranger)[0] == 401


async def test_an_admin_known_from_its_address_never_waits_for_a_strangers_check(
    tmp_path: Path, clock: Clock
) -> None:
    async with gateway(tmp_path, clock, limits={"hash_concurrency": 1}) as gw:
        network = await _admin(gw)
        pool = gw.app[LOGIN_LIMITER].pool
        assert (await _login(gw, network, client="192.0.2.10"))[0] == 200
        async with pool.slot():  # a stranger's check holds the general place
            stranger = asyncio.create_task(_login(gw, network, "nobody", "x",
                                                  client="198.51.100.7"))
            await _until(lambda: pool.waiting == 1)
            # The place kept for known admins: checked while the general one is busy.
            assert (await _login(gw, network, client="192.0.2.10"))[0] == 200
            # From another address the same admin is a stranger and waits in line.
            elsewhere = asyncio.create_task(_login(gw, network, client="192.0.2.99"))
            await _until(lambda: pool.waiting == 2)
        assert (await elsewhere)[0] == 200 and (await stranger)[0] == 401


async def test_a_client_gone_before_its_turn_is_never_hashed(tmp_path: Path,
                                                             clock: Clock) -> None:
    async with gateway(tmp_path, clock, limits={"hash_concurrency": 1}) as gw:
        network = await _admin(gw)
        pool = gw.app[LOGIN_LIMITER].pool
        body = json.dumps({"username": "ann", "password": PASSWORD}).encode()
        port = int(gw.url.rsplit(":", 1)[1])
        async with pool.slot():
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /console/v1/login HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n"
                         + f"x-api-key: {network.api_key}\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            await _until(lambda: pool.waiting == 1)
            writer.close()  # the client gives up while its check is in line
            await writer.wait_closed()
            await asyncio.sleep(0.2)  # the gateway sees the connection end
        await _until(lambda: pool.dropped == 1)
        assert pool.hashed == 0
        # The pool is free again: the next attempt is checked.
        assert (await _login(gw, network))[0] == 200 and pool.hashed == 1


# -- 2. limits per username, address and prefix, before hashing --------------------------


async def test_the_address_limit_uses_the_client_behind_trusted_proxies(
    tmp_path: Path, clock: Clock
) -> None:
    limits = {"failures_per_address": 3, "failures_per_prefix": 100}
    async with gateway(tmp_path, clock, limits=limits) as gw:
        network = await _admin(gw)
        pool = gw.app[LOGIN_LIMITER].pool
        for name in ("a", "b", "c"):  # a different username each time: spraying
            assert (await _login(gw, network, name, "x", client="203.0.113.7"))[0] == 401
        hashed = pool.hashed
        assert _limited(*await _login(gw, network, "d", "x", client="203.0.113.7"))
        # Even the right password: the address is over its limit, and nothing was hashed.
        assert _limited(*await _login(gw, network, client="203.0.113.7"))
        assert pool.hashed == hashed
        # The proxy itself (no X-Forwarded-For) and another client are not.
        assert (await _login(gw, network))[0] == 200
        assert (await _login(gw, network, client="203.0.113.8"))[0] == 200


async def test_an_untrusted_peer_cannot_escape_by_inventing_addresses(
    tmp_path: Path, clock: Clock
) -> None:
    limits = {"failures_per_address": 3, "failures_per_prefix": 100}
    async with gateway(tmp_path, clock, server={"trusted_proxies": []}, limits=limits) as gw:
        network = await _admin(gw)
        for i in range(3):
            assert (await _login(gw, network, f"u{i}", "x", client=f"10.9.{i}.1"))[0] == 401
        # X-Forwarded-For from an untrusted peer is not believed: still 127.0.0.1.
        assert _limited(*await _login(gw, network, client="10.9.9.9"))


@pytest.mark.parametrize(("family", "addresses", "neighbour", "elsewhere"), [
    ("ipv4", ["198.51.100.1", "198.51.100.2", "198.51.100.3"], "198.51.100.250",
     "198.51.101.1"),
    ("ipv6", ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"],
     "2001:db8:1:2:abcd::9", "2001:db8:1:3::1"),
])
async def test_the_prefix_limit_covers_a_24_or_a_64(
    tmp_path: Path, clock: Clock, family: str, addresses: list[str], neighbour: str,
    elsewhere: str,
) -> None:
    limits = {"failures_per_address": 100, "failures_per_prefix": 3}
    async with gateway(tmp_path, clock, limits=limits) as gw:
        network = await _admin(gw)
        for i, address in enumerate(addresses):
            assert (await _login(gw, network, f"u{i}", "x", client=address))[0] == 401
        assert _limited(*await _login(gw, network, client=neighbour)), family
        assert (await _login(gw, network, client=elsewhere))[0] == 200


async def test_the_username_limit_holds_from_any_address_until_the_window_ends(
    tmp_path: Path, clock: Clock
) -> None:
    async with gateway(tmp_path, clock, limits={"failures_per_username": 3}) as gw:
        network = await _admin(gw)
        for i in range(3):
            assert (await _login(gw, network, "ann", "x", client=f"192.0.2.{i}"))[0] == 401
        status, body, response = await _login(gw, network, client="198.18.0.1")
        assert _limited(status, body, response)
        assert int(response.headers["Retry-After"]) <= 300
        # Another admin of the network is not held up.
        await gw.store.create_admin(network.id, "bob", "admin",
                                    hash_password(PASSWORD, log2_n=10))
        assert (await _login(gw, network, "bob", client="198.18.0.1"))[0] == 200
        clock.advance(int(response.headers["Retry-After"]))
        assert (await _login(gw, network, client="198.18.0.1"))[0] == 200


async def test_logins_answer_503_while_the_redis_counters_are_unreachable(
    tmp_path: Path, clock: Clock
) -> None:
    limits = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    async with gateway(tmp_path, clock, limits=limits) as gw:
        network = await _admin(gw)
        status, body, response = await _login(gw, network)
        assert status == 503 and body["code"] == 500000
        assert response.headers["Retry-After"] == "1"
        assert gw.app[LOGIN_LIMITER].pool.hashed == 0


# -- 3. failed logins folded in the audit log ---------------------------------------------


async def test_failures_fold_into_one_entry_per_username_address_and_minute(
    tmp_path: Path, clock: Clock
) -> None:
    clock.now = (int(clock.now) // 60) * 60 + 5.0  # well inside a minute
    async with gateway(tmp_path, clock) as gw:
        network = await _admin(gw)
        for _ in range(3):
            await _login(gw, network, "ann", "wrong", client="203.0.113.5")
        await _login(gw, network, "ann", "wrong", client="203.0.113.6")
        clock.advance(60)
        await _login(gw, network, "ann", "wrong", client="203.0.113.5")
        entries = await gw.store.audit_page(network.id, 50, None)
        folded = [(e.actor, e.source_address, e.count) for e in entries
                  if e.action == "console.login_failed"]
        assert folded == [("ann", "203.0.113.5", 1), ("ann", "203.0.113.6", 1),
                          ("ann", "203.0.113.5", 3)]
        # The API pages through the same three entries, never a row per attempt.
        boss = await gw.admin_token(network, "boss", "super-admin")
        _status, page, _ = await gw.call("GET", "/api/v3/audit-logs?limit=100", boss)
        failed = [e for e in page["auditLogs"] if e["action"] == "console.login_failed"]
        assert len(failed) == 3 and "wrong" not in json.dumps(page)


# -- 5. Secure cookies --------------------------------------------------------------------


def _set_cookie(response: aiohttp.ClientResponse) -> str:
    (value,) = response.headers.getall("Set-Cookie")
    assert value.startswith("gateway_console=")
    return value


async def test_the_cookie_is_secure_over_https_or_a_trusted_proxy_saying_so(
    tmp_path: Path, clock: Clock
) -> None:
    async with gateway(tmp_path, clock, https=True) as gw:
        network = await _admin(gw)
        _s, _b, plain = await _login(gw, network)
        assert "Secure" not in _set_cookie(plain)
        _s, _b, forwarded = await _login(gw, network, headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in _set_cookie(forwarded)
        _s, _b, forwarded_http = await _login(gw, network,
                                              headers={"X-Forwarded-Proto": "http"})
        assert "Secure" not in _set_cookie(forwarded_http)
        async with gw.session.post(
            f"https://127.0.0.1:{_https_port(gw)}/console/v1/login", ssl=False,
            headers={"x-api-key": network.api_key},
            json={"username": "ann", "password": PASSWORD},
        ) as direct:
            assert direct.status == 200
            cookie = _set_cookie(direct)
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # Logging out clears the cookie with the same attributes.
        _s, _b, out = await gw.call("POST", "/console/v1/logout",
                                    headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in _set_cookie(out)


async def test_an_untrusted_peer_saying_https_gets_no_secure_unless_always(
    tmp_path: Path, clock: Clock
) -> None:
    async with gateway(tmp_path, clock, server={"trusted_proxies": []}) as gw:
        network = await _admin(gw)
        _s, _b, response = await _login(gw, network, headers={"X-Forwarded-Proto": "https"})
        assert "Secure" not in _set_cookie(response)
    async with gateway(tmp_path, clock, console={"cookie_secure": "always"}) as gw:
        network = await _admin(gw)
        _s, _b, response = await _login(gw, network)
        assert "Secure" in _set_cookie(response)


def _https_port(gw: Gateway) -> int:
    https = gw.app[RUNTIME].current.config.server.https
    assert https is not None
    return https.port

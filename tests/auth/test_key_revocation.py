"""`gateway keys revoke`: a leaked signing key stops verifying and signing at once, on
every instance, for every token it signed (cached ones included), and is audited."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.auth.loader import load_token_service
from gateway.cli_keys import revoke_key
from gateway.config import load_config
from gateway.keys import FEED, TOKENS
from gateway.store import Network, SigningKeyError, open_store
from gateway.testing.process import GatewayProcess, run_cli
from gateway.testing.upstream import running_upstream
from tests.auth.conftest import Gateway, error
from tests.auth.test_cluster import BOUND, _configs, _login, _status

INVALID = error(401, "Invalid token")


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def _jwks_kids(gw: Gateway) -> set[str]:
    return {key["kid"] for key in (await gw.call("GET", "/.well-known/jwks.json"))[1]["keys"]}


async def _revoke(gw: Gateway, tmp_path: Path, kid: str) -> dict[str, Any]:
    """Revoke as the command does (its own store connection), then let the feed deliver."""
    result = await revoke_key(load_config(tmp_path / "config.yaml", environ={}), kid)
    await gw.app[FEED].catch_up()
    ring = gw.app[TOKENS].ring
    for _ in range(500):  # the replacement signer loads in the background (milliseconds)
        if ring.loaded:
            break
        await asyncio.sleep(0.01)
    return result


async def test_revoking_the_signing_key_refuses_its_tokens_even_cached(
    gw: Gateway, tmp_path: Path
) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    kid = _kid(token)
    leaked = gw.app[TOKENS].ring.signer().private_key
    assert (await gw.call("GET", "/api/v3/x", token))[0] == 200  # verified, now cached
    assert len(gw.app[TOKENS].cache) == 1

    result = await _revoke(gw, tmp_path, kid)

    # The only signing key was revoked: a new one was made first and signs from now on.
    assert result["kid"] == kid and result["newSigningKey"] is True
    assert result["signingKid"] != kid
    status, answer, _ = await gw.call("GET", "/api/v3/x", token)
    assert (status, answer) == (401, INVALID)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "jti": "fresh"}, leaked, algorithm="ES256",
                        headers={"kid": kid})  # whoever holds the leaked key
    assert (await gw.call("GET", "/api/v3/x", forged))[1] == INVALID
    assert await _jwks_kids(gw) == {result["signingKid"]}
    again = (await gw.login(network, user_id="bob", device_id="d2"))["accessToken"]
    assert _kid(again) == result["signingKid"]
    assert (await gw.call("GET", "/api/v3/x", again))[0] == 200

    (entry,) = [e for e in await gw.store.audit_page(network.id, 10, None)
                if e.action == "signing_key.revoke"]
    assert entry.target == kid and entry.actor.startswith("cli")


async def test_revoking_a_retired_key_leaves_the_signer_alone(
    gw: Gateway, tmp_path: Path
) -> None:
    network = await gw.network()
    old = (await gw.login(network, user_id="old"))["accessToken"]
    signer = await gw.app[TOKENS].ring.rotate()
    new = (await gw.login(network, user_id="new", device_id="d2"))["accessToken"]
    assert (await gw.call("GET", "/api/v3/x", old))[0] == 200  # retired keys still verify

    result = await _revoke(gw, tmp_path, _kid(old))

    assert result["newSigningKey"] is False and result["signingKid"] == signer
    assert (await gw.call("GET", "/api/v3/x", old))[1] == INVALID
    assert (await gw.call("GET", "/api/v3/x", new))[0] == 200
    assert await _jwks_kids(gw) == {signer}


async def test_a_revoked_key_never_comes_back(gw: Gateway, tmp_path: Path) -> None:
    network = await gw.network()
    kid = _kid((await gw.login(network))["accessToken"])
    config = load_config(tmp_path / "config.yaml", environ={})
    await _revoke(gw, tmp_path, kid)
    with pytest.raises(SigningKeyError, match="already revoked"):
        await revoke_key(config, kid)
    with pytest.raises(SigningKeyError, match="not found"):
        await revoke_key(config, "0123456789abcdef")

    store = await open_store(config)
    try:  # what a process starting now loads: neither a signer nor a verifier of it
        ring = (await load_token_service(config, store, time.time)).ring
        assert ring.signer().kid != kid and ring.verifier(kid) is None
        await ring.rotate()  # retiring every key that signs does not touch it either
        await ring.load()
        assert ring.verifier(kid) is None
    finally:
        await store.close()


# -- two gateway processes: the revocation travels the change feed ----------------------


@pytest.fixture
async def pair(store_config: Path) -> AsyncIterator[tuple[str, str, Network, Path]]:
    async with running_upstream("sg") as upstream:
        first, second = _configs(store_config, upstream)
        store = await open_store(load_config(first, environ={}))
        try:
            network = await store.create_network("cluster", "sg", secure=False)
        finally:
            await store.close()
        async with GatewayProcess(first) as a, GatewayProcess(second) as b:
            yield a.url, b.url, network, first


async def _kids(session: aiohttp.ClientSession, url: str) -> set[str]:
    async with session.get(f"{url}/.well-known/jwks.json") as response:
        body: dict[str, Any] = await response.json()
        return {key["kid"] for key in body["keys"]}


async def test_the_other_process_refuses_a_revoked_keys_tokens(
    pair: tuple[str, str, Network, Path], backend: str
) -> None:
    a, b, network, config = pair
    async with aiohttp.ClientSession() as session:
        token = await _login(session, a, network, "u1", "d1")
        kid = _kid(token)
        assert await _status(session, b, token) == 200  # b has verified and cached it

        code, out, err = await run_cli("keys", "revoke", kid, "--config", str(config))
        assert code == 0, err
        result = json.loads(out)
        assert result["kid"] == kid and result["newSigningKey"] is True
        started = time.monotonic()
        while await _status(session, b, token) != 401:
            assert time.monotonic() - started < 5, "b never refused the revoked key's token"
            await asyncio.sleep(0.002)
        elapsed = time.monotonic() - started
        print(f"\n{backend}: key revocation refused by the other process after "
              f"{elapsed * 1000:.0f} ms")
        assert elapsed < BOUND
        assert await _status(session, a, token) == 401
        deadline = time.monotonic() + 5  # the replacement loads just after the refusal
        while (kids := await _kids(session, b)) != {result["signingKid"]}:
            assert time.monotonic() < deadline, kids
            await asyncio.sleep(0.01)

        # b signs with the replacement, and a accepts what b signs.
        fresh = await _login(session, b, network, "u2", "d2")
        assert _kid(fresh) == result["signingKid"]
        assert await _status(session, a, fresh) == 200

        code, _, err = await run_cli("keys", "revoke", kid, "--config", str(config))
        assert code == 1 and err.strip() == (
            f"gateway keys revoke: signing key '{kid}' is already revoked")

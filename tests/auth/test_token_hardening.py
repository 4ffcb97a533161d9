"""What the gateway never issues is refused even under a good signature: lifetimes longer
than configured, an `iat` in the future, the high-S twin of an ECDSA signature. Also the
bounds around them: the leeway (config) and how long revoked ids are remembered."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gateway.api.network import MAX_ADMIN_TOKEN_HOURS
from gateway.auth.ecdsa import ORDERS, is_high_s, token_is_high_s
from gateway.auth.lifetimes import NETWORK_ADMIN_TOKEN_MAX_HOURS, Lifetimes
from gateway.auth.state import PRUNE_MARGIN, AuthState
from gateway.config import ConfigError, Seconds, TokensConfig, load_config
from gateway.keys import RUNTIME, TOKENS
from gateway.testing.support import Clock, write_config
from tests.auth.conftest import Gateway, error

INVALID = error(401, "Invalid token")
DAY = 86400
LEEWAY = 30  # the default tokens.leeway


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _resigned(gw: Gateway, token: str, key: Any = None, **changes: Any) -> str:
    """`token` with some claims changed, signed by the gateway's key (or `key`)."""
    key = key or gw.app[TOKENS].ring.signer().private_key
    return jwt.encode({**_claims(token), **changes}, key, algorithm="ES256",
                      headers={"kid": jwt.get_unverified_header(token)["kid"]})


def _twin(token: str, algorithm: str = "ES256") -> str:
    """The same token with the other valid signature: (r, n - s)."""
    head, body, signature = token.split(".")
    raw = _unb64(signature)
    half = len(raw) // 2
    s = int.from_bytes(raw[half:], "big")
    return f"{head}.{body}.{_b64(raw[:half] + (ORDERS[algorithm] - s).to_bytes(half, 'big'))}"


# -- lifetimes --------------------------------------------------------------------------


async def test_a_backdated_long_lived_token_from_a_retired_key_is_refused(
    gw: Gateway, clock: Clock
) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    leaked = gw.app[TOKENS].ring.signer().private_key
    await gw.app[TOKENS].ring.rotate()
    clock.advance(3600)
    iat = _claims(token)["iat"]  # before the retirement: passes that check
    # Within the configured lifetime the retired key still verifies (the control) ...
    fair = _resigned(gw, token, leaked, jti="fair", exp=iat + 30 * DAY)
    assert (await gw.call("GET", "/api/v3/x", fair))[0] == 200
    # ... but a token that lives longer than any access token the gateway issues is forged.
    forged = _resigned(gw, token, leaked, jti="forged", exp=int(clock.now) + 5 * 365 * DAY)
    assert (await gw.call("GET", "/api/v3/x", forged))[1] == INVALID
    just_over = _resigned(gw, token, leaked, jti="over", exp=iat + 30 * DAY + LEEWAY + 1)
    assert (await gw.call("GET", "/api/v3/x", just_over))[1] == INVALID


async def test_admin_tokens_live_at_most_the_largest_admin_lifetime(gw: Gateway) -> None:
    network = await gw.network()
    token = await gw.admin_token(network, "ada", "admin")
    iat = _claims(token)["iat"]
    longest = NETWORK_ADMIN_TOKEN_MAX_HOURS * 3600
    ok = _resigned(gw, token, exp=iat + longest)
    assert (await gw.call("GET", "/api/v3/networks/me", ok))[0] == 200
    too_long = _resigned(gw, token, exp=iat + longest + LEEWAY + 1)
    assert (await gw.call("GET", "/api/v3/networks/me", too_long))[1] == INVALID


async def test_an_iat_in_the_future_is_refused(gw: Gateway, clock: Clock) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    now = int(clock.now)
    within = _resigned(gw, token, iat=now + LEEWAY - 5, exp=now + DAY)
    assert (await gw.call("GET", "/api/v3/x", within))[0] == 200  # clocks differ a little
    ahead = _resigned(gw, token, iat=now + LEEWAY + 60, exp=now + DAY)
    assert (await gw.call("GET", "/api/v3/x", ahead))[1] == INVALID


async def test_a_lifetime_raised_by_a_reload_is_honoured(gw: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.setdefault("tokens", {})["access_ttl_unsecure"] = "40d"  # beyond access_ttl_secure
    path.write_text(yaml.safe_dump(raw))
    assert await gw.app[RUNTIME].reload()
    token = (await gw.login(await gw.network()))["accessToken"]
    claims = _claims(token)
    assert claims["exp"] - claims["iat"] == 40 * DAY
    assert (await gw.call("GET", "/api/v3/x", token))[0] == 200


def test_lifetime_bounds_follow_the_configuration() -> None:
    assert NETWORK_ADMIN_TOKEN_MAX_HOURS == MAX_ADMIN_TOKEN_HOURS  # the API's own cap
    bounds = Lifetimes.from_config(TokensConfig())
    assert bounds == Lifetimes() and bounds.of("access") == 30 * DAY
    longer = TokensConfig(access_ttl_unsecure=Seconds(40 * DAY),
                          admin_token_ttl=Seconds(20 * 365 * DAY))
    bounds = Lifetimes.from_config(longer)
    assert (bounds.of("access"), bounds.of("admin")) == (40 * DAY, 20 * 365 * DAY)


# -- low-S ------------------------------------------------------------------------------


async def test_the_high_s_twin_of_a_valid_token_is_refused(gw: Gateway) -> None:
    network = await gw.network()
    token = (await gw.login(network))["accessToken"]
    twin = _twin(token)
    public = gw.app[TOKENS].ring.signer().public_key
    assert jwt.decode(twin, public, algorithms=["ES256"], options={"verify_exp": False})
    assert token_is_high_s("ES256", twin) and not token_is_high_s("ES256", token)
    assert (await gw.call("GET", "/api/v3/x", twin))[1] == INVALID
    assert (await gw.call("GET", "/api/v3/x", token))[0] == 200
    assert (await gw.call("GET", "/api/v3/x", twin))[1] == INVALID  # also once cached


async def test_the_gateway_signs_low_s_only(gw: Gateway) -> None:
    tokens = gw.app[TOKENS]
    for index in range(64):  # about half of raw ECDSA signatures are high-S
        token, _ = await tokens.issue(kind="access", network_id="n", subject=f"u{index}",
                                      ttl=600)
        assert not token_is_high_s("ES256", token)


@pytest.mark.parametrize(("algorithm", "curve", "digest"), [
    ("ES256", ec.SECP256R1(), hashes.SHA256()),
    ("ES384", ec.SECP384R1(), hashes.SHA384()),
    ("ES512", ec.SECP521R1(), hashes.SHA512()),
])
def test_every_ecdsa_size_signs_low_s_and_knows_the_twin(
    algorithm: str, curve: ec.EllipticCurve, digest: hashes.HashAlgorithm
) -> None:
    key = ec.generate_private_key(curve)
    for index in range(24):
        token = jwt.encode({"i": index}, key, algorithm=algorithm)
        assert not token_is_high_s(algorithm, token)
        twin = _twin(token, algorithm)
        assert token_is_high_s(algorithm, twin)
        head, body, signature = twin.split(".")
        raw = _unb64(signature)
        half = len(raw) // 2
        der = encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                   int.from_bytes(raw[half:], "big"))
        key.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(digest))
    assert not is_high_s(algorithm, b"\xff" * 10)  # not a raw signature: left to pyjwt


# -- leeway and the revocation memory ---------------------------------------------------


@pytest.mark.parametrize(("leeway", "shown"), [("6m", "360s"), ("301s", "301s"), ("1h", "3600s")])
def test_a_leeway_over_5_minutes_is_refused(tmp_path: Path, leeway: str, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, {"tokens": {"leeway": leeway}}), environ={})
    assert f"tokens.leeway: got {shown}, expected at most 5m" in str(caught.value)


def test_a_leeway_of_5_minutes_is_the_most(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {"tokens": {"leeway": "5m"}}), environ={})
    assert config.tokens.leeway == Seconds(300.0)
    with pytest.raises(ConfigError, match=r"tokens\.leeway: got 600s"):
        load_config(write_config(tmp_path), environ={"GATEWAY_TOKENS_LEEWAY": "10m"})


@pytest.mark.parametrize("leeway", [0.0, 30.0, 300.0])
def test_revoked_ids_are_kept_until_exp_plus_leeway(leeway: float) -> None:
    clock = Clock()
    state = AuthState(clock=clock, leeway=leeway)
    state.revoked["j"] = clock.now
    clock.advance(leeway + PRUNE_MARGIN - 1)  # a check would still accept it by the leeway
    assert state.prune() == 0 and state.is_revoked("j")
    clock.advance(2)
    assert state.prune() == 1 and not state.is_revoked("j")

"""Every malformed, forged or stale token is 401 JSON, never a 500."""

from __future__ import annotations

import base64
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.keys import TOKENS
from gateway.testing.support import Clock
from tests.auth.conftest import Gateway, error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, object], claims: dict[str, object], signature: bytes = b"") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
                     _b64(signature)])


async def _valid(gw: Gateway) -> tuple[str, dict[str, object], dict[str, object]]:
    network = await gw.network()
    token = (await gw.login(network, user_id="victim"))["accessToken"]
    return (token, jwt.get_unverified_header(token),
            jwt.decode(token, options={"verify_signature": False}))


async def test_forged_and_broken_tokens(gw: Gateway) -> None:
    token, header, claims = await _valid(gw)
    kid = header["kid"]
    ring = gw.app[TOKENS].ring
    public_pem = ring.signer().public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    attacker = ec.generate_private_key(ec.SECP256R1())
    head, body, signature = token.split(".")
    elevated = {**claims, "sub": "admin", "kind": "admin", "role": "super-admin"}
    cases = {
        "alg none": _forge({"alg": "none", "kid": kid}, claims),
        "alg None": _forge({"alg": "None", "kid": kid}, claims),
        "alg NONE": _forge({"alg": "NONE", "kid": kid}, claims),
        "hs256 with the public key": _forge(
            {"alg": "HS256", "kid": kid}, claims,
            hmac.new(public_pem, f"{head}.{body}".encode(), "sha256").digest()),
        "another key, same kid": jwt.encode(claims, attacker, algorithm="ES256",
                                            headers={"kid": kid}),
        "unknown kid": jwt.encode(claims, attacker, algorithm="ES256", headers={"kid": "k0"}),
        "kid path traversal": jwt.encode(claims, attacker, algorithm="ES256",
                                         headers={"kid": "../../etc/passwd"}),
        "kid sql": jwt.encode(claims, attacker, algorithm="ES256",
                              headers={"kid": "' OR 1=1 --"}),
        "jku header": _forge({**header, "jku": "http://127.0.0.1/keys"}, claims),
        "jwk header": _forge({**header, "jwk": {"kty": "EC"}}, claims),
        "crit header": ".".join(
            [_b64(json.dumps({**header, "crit": ["exp"]}).encode()), body, signature]),
        "claims swapped under a valid signature": ".".join(
            [head, _b64(json.dumps(elevated).encode()), signature]),
        "truncated": token[:-10],
        "no signature": f"{head}.{body}.",
        "two parts": f"{head}.{body}",
        "oversized": token + "A" * 5000,
        "garbage": "not-a-token",
        "empty claims": _forge(header, {}),
        "non-numeric exp": _forge(header, {**claims, "exp": "tomorrow"}),
        "nested jwt": _forge(header, {"token": token}),
        "unicode": "ü.ü.ü",
    }
    for name, forged in cases.items():
        status, answer, _ = await gw.call("GET", "/api/v3/x", forged)
        assert (status, answer) == (401, error(401, "Invalid token")), name


async def test_a_token_of_the_wrong_kind(gw: Gateway) -> None:
    network = await gw.network()
    admin = await gw.admin_token(network, "adm", "admin")
    user = (await gw.login(network))["accessToken"]
    status, answer, _ = await gw.call("GET", "/api/v3/sessions", admin)
    assert (status, answer) == (401, error(401, "Invalid token"))
    status, answer, _ = await gw.call("GET", "/api/v3/networks/server-key", user)
    assert (status, answer) == (403, error(403, "Permission denied"))


async def test_authorization_header_shapes(gw: Gateway) -> None:
    token, _header, _claims = await _valid(gw)
    for value in (f"Basic {token}", "Bearer", "Bearer ", token):
        status, answer, _ = await gw.call("GET", "/api/v3/x", headers={"Authorization": value})
        assert (status, answer) == (401, error(401, "Unauthorized")), value
    status, _, _ = await gw.call("GET", "/api/v3/x", headers={"Authorization": f"bearer {token}"})
    assert status == 200


async def test_rotation_keeps_old_tokens_until_their_last_expiry(
    gw: Gateway, clock: Clock
) -> None:
    network = await gw.network()
    before = (await gw.login(network, user_id="old"))["accessToken"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = await gw.app[TOKENS].ring.rotate()
    after = (await gw.login(network, user_id="new", device_id="d2"))["accessToken"]
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    kids = {key["kid"] for key in (await gw.call("GET", "/.well-known/jwks.json"))[1]["keys"]}
    assert kids == {old_kid, new_kid}
    assert (await gw.call("GET", "/api/v3/x", before))[0] == 200

    clock.advance(86400 + 60)  # past the last expiry of anything the old key signed
    kids = {key["kid"] for key in (await gw.call("GET", "/.well-known/jwks.json"))[1]["keys"]}
    assert kids == {new_kid}
    forged_late = jwt.encode(  # a token "signed" by the retired key after its last expiry
        {**jwt.decode(before, options={"verify_signature": False}),
         "iat": int(clock.now), "exp": int(clock.now) + 600},
        gw.app[TOKENS].ring._keys[old_kid].private_key, algorithm="ES256",
        headers={"kid": old_kid})
    status, answer, _ = await gw.call("GET", "/api/v3/x", forged_late)
    assert (status, answer) == (401, error(401, "Invalid token"))


@pytest.mark.parametrize("claim", ["sub", "exp", "jti", "nid", "kind", "iat", "iss"])
async def test_every_required_claim(gw: Gateway, claim: str) -> None:
    _token, header, claims = await _valid(gw)
    key = gw.app[TOKENS].ring.signer()
    del claims[claim]
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": header["kid"]})
    status, answer, _ = await gw.call("GET", "/api/v3/x", token)
    assert (status, answer) == (401, error(401, "Invalid token"))


async def test_a_correctly_signed_token_past_exp_is_token_expired(gw: Gateway) -> None:
    _token, header, claims = await _valid(gw)
    key = gw.app[TOKENS].ring.signer()
    now = int(time.time())
    stale = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, key.private_key,
                       algorithm="ES256", headers={"kid": header["kid"]})
    status, answer, _ = await gw.call("GET", "/api/v3/x", stale)
    assert (status, answer) == (401, error(401, "token expired"))

"""Certificate-bound tokens (RFC 8705) without TLS: the `cnf` claim's strict parsing, its
conversion to the gateway's hex fingerprints, and the OAuth endpoints, which judge a
bound token as its holder would present it (over real TLS: tests/tls/test_token_binding.py)."""

from __future__ import annotations

import base64
import hashlib
import string
from typing import Any

import jwt
import pytest

from gateway.auth.binding import bound_certificate, fingerprint_of, thumbprint
from gateway.auth.state import AuthState
from gateway.errors import GatewayError
from gateway.keys import AUTH_STATE, TOKENS
from tests.auth.conftest import Gateway, error

CERT = hashlib.sha256(b"a client certificate").hexdigest()
THUMB = base64.urlsafe_b64encode(bytes.fromhex(CERT)).rstrip(b"=").decode()
INVALID = error(401, "Invalid token")
_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
# The last of 43 characters carries two bits beyond the digest, zero when canonical.
NON_CANONICAL = THUMB[:-1] + _ALPHABET[_ALPHABET.index(THUMB[-1]) + 1]


def test_thumbprints_are_unpadded_base64url_of_the_digest() -> None:
    assert thumbprint(CERT) == THUMB and len(THUMB) == 43
    assert fingerprint_of(THUMB) == CERT
    assert base64.urlsafe_b64decode(NON_CANONICAL + "=") == bytes.fromhex(CERT)
    with pytest.raises(ValueError):
        fingerprint_of(NON_CANONICAL)


def test_binding_needs_the_switch_and_a_current_pin_of_the_network() -> None:
    state = AuthState(clock=lambda: 100.0)
    state.pin("net", CERT, 200.0)
    assert bound_certificate(True, CERT, state, "net", 100.0) == CERT
    assert bound_certificate(False, CERT, state, "net", 100.0) is None
    assert bound_certificate(True, None, state, "net", 100.0) is None
    assert bound_certificate(True, CERT, state, "other-net", 100.0) is None
    assert bound_certificate(True, CERT, state, "net", 201.0) is None  # past notAfter


def _resigned(gw: Gateway, token: str, **changes: Any) -> str:
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    return jwt.encode(claims, gw.app[TOKENS].ring.signer().private_key, algorithm="ES256",
                      headers={"kid": jwt.get_unverified_header(token)["kid"]})


async def test_a_bound_token_carries_cnf_and_needs_its_certificate(gw: Gateway) -> None:
    network = await gw.network()
    await gw.admin_token(network, "ada", "admin")
    token, credential = await gw.app[TOKENS].issue_admin(network.id, "ada", "admin", 3600,
                                                         cert_sha256=CERT)
    await gw.store.record_credential(credential)
    assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"x5t#S256": THUMB}
    assert gw.app[TOKENS].decode(token).cert_sha256 == CERT
    # No TLS here, so no certificate: the bound token is refused on every kind of route.
    for path in ("/api/v3/networks/me", "/api/v3/anything"):
        assert (await gw.call("GET", path, token))[:2] == (401, INVALID)


@pytest.mark.parametrize("cnf", [
    "x", None, [], {}, {"x5t#S256": 1}, {"x5t#S256": None},
    {"x5t#S256": THUMB, "jkt": "thumbprint-of-a-key"},  # unknown methods are not ignored
    {"X5T#S256": THUMB}, {"x5t": THUMB},
    {"x5t#S256": THUMB + "="},  # padded
    {"x5t#S256": THUMB[:-1]},  # 31 bytes and a bit
    {"x5t#S256": THUMB[:-2] + "+/"},  # base64, not base64url
    {"x5t#S256": NON_CANONICAL},  # the same digest, another spelling
    {"x5t#S256": CERT},  # hex is the gateway's spelling, not RFC 8705's
])
async def test_a_cnf_that_is_not_exactly_x5t_s256_is_an_invalid_token(
    gw: Gateway, cnf: Any
) -> None:
    network = await gw.network()
    plain = await gw.admin_token(network, "ada", "admin")
    forged = _resigned(gw, plain, cnf=cnf)  # None: `"cnf": null`, present all the same
    with pytest.raises(GatewayError):
        gw.app[TOKENS].decode(forged)
    assert (await gw.call("GET", "/api/v3/networks/me", forged))[:2] == (401, INVALID)


async def test_introspection_reports_the_binding_and_revocation_needs_no_certificate(
    gw: Gateway,
) -> None:
    network = await gw.network()
    admin = await gw.admin_token(network, "root", "super-admin")
    await gw.admin_token(network, "ada", "admin")
    bound, credential = await gw.app[TOKENS].issue_admin(network.id, "ada", "admin", 3600,
                                                         cert_sha256=CERT)
    await gw.store.record_credential(credential)
    status, body, _ = await gw.call("POST", "/oauth2/introspect", admin,
                                    data={"token": bound})
    assert status == 200 and body["active"] is True, body
    assert body["cnf"] == {"x5t#S256": THUMB}
    status, body, _ = await gw.call("POST", "/oauth2/introspect", admin,
                                    data={"token": admin})
    assert body["active"] is True and "cnf" not in body
    # An admin revokes it without holding its certificate.
    assert (await gw.call("POST", "/oauth2/revoke", admin, data={"token": bound}))[0] == 200
    assert gw.app[AUTH_STATE].is_revoked(credential.jti)
    status, body, _ = await gw.call("POST", "/oauth2/introspect", admin,
                                    data={"token": bound})
    assert body == {"active": False}

"""The pure parts of the OAuth endpoints: who may revoke which token, the issuer setting,
the RFC shapes of the gate's refusals, form parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.api.oauth_errors import (
    OAuthError,
    _form_parameters,
    introspection_refusal,
    revocation_refusal,
)
from gateway.auth.claims import Claims
from gateway.auth.permissions import may_revoke_token
from gateway.auth.principal import Principal
from gateway.config import ConfigError, load_config, token_issuer
from gateway.errors import GatewayError, invalid_token, permission_denied, unauthorized
from gateway.testing.support import write_config

NET, OTHER = "net-1", "net-2"


def _token(kind: str = "access", sub: str = "alice", role: str | None = None,
           nid: str = NET, jti: str = "target") -> Claims:
    return Claims(sub=sub, nid=nid, kind=kind, jti=jti, iat=0, exp=1, kid="k", role=role)


def _user(user: str = "bob", jti: str = "own", nid: str = NET) -> Principal:
    return Principal(user_id=user, network_id=nid, kind="access", role="user", token_id=jti)


def _admin(user: str, role: str, nid: str = NET) -> Principal:
    return Principal(user_id=user, network_id=nid, kind="admin", role=role, token_id="a-" + user,
                     credential="admin_token")


SERVER = Principal(user_id="", network_id=NET, kind="server", role="server",
                   credential="server_key")
CONSOLE_ADMIN = Principal(user_id="ann", network_id=NET, kind="admin", role="admin",
                          credential="console_session", session_id="s")


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (_user(jti="target"), _token(), True),  # the holder, presenting it
        (_user(), _token(), False),  # another token of the network
        (_user(user="alice"), _token(), False),  # the same user's other token
        (SERVER, _token(), True),
        (SERVER, _token(nid=OTHER), False),
        (SERVER, _token("admin", "ann", "admin"), False),  # servers: end users' tokens only
        (_admin("ann", "admin"), _token(), True),
        (CONSOLE_ADMIN, _token(), True),
        (_admin("ann", "admin", OTHER), _token(), False),
        (_admin("sue", "super-admin"), _token(), True),
        (_admin("mo", "moderator"), _token(), False),
        # Admin tokens: may_revoke_admin's rules (API.md DELETE /api/v1/admin-token).
        (_admin("ann", "admin"), _token("admin", "ann", "admin"), True),  # another of hers
        (_admin("ann", "admin"), _token("admin", "pat", "admin"), False),
        (_admin("sue", "super-admin"), _token("admin", "pat", "admin"), True),
        (_admin("sue", "super-admin"), _token("admin", "mo", "moderator"), True),
        (_admin("sue", "super-admin"), _token("admin", "sam", "super-admin"), False),
        (_admin("mo", "moderator"), _token("admin", "mo", "moderator", jti="a-mo"), True),
    ],
)
def test_who_may_revoke_which_token(actor: Principal, target: Claims, allowed: bool) -> None:
    assert may_revoke_token(actor, target) is allowed


def _config(tmp_path: Path, tokens: dict[str, object] | None = None,
            server: dict[str, object] | None = None) -> Path:
    overrides: dict[str, object] = {"tokens": tokens or {}}
    if server is not None:
        overrides["server"] = server
    return write_config(tmp_path, overrides)


def test_the_issuer_defaults_to_the_https_listener(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, server={
        "https": {"host": "gw.example.com", "port": 8443}}), environ={})
    assert token_issuer(config) == "https://gw.example.com:8443"
    config = load_config(_config(tmp_path, server={"https": {"host": "::1", "port": 443}}),
                         environ={})
    assert token_issuer(config) == "https://[::1]"
    # No HTTPS listener: TLS ends in front of the gateway, on 443.
    config = load_config(_config(tmp_path, server={
        "https": None, "http": {"host": "gw.internal", "port": 8080}}), environ={})
    assert token_issuer(config) == "https://gw.internal"


def test_the_issuer_is_configurable(tmp_path: Path) -> None:
    path = _config(tmp_path, {"issuer": "https://auth.example.com/"})
    assert token_issuer(load_config(path, environ={})) == "https://auth.example.com"
    config = load_config(path, environ={"GATEWAY_TOKENS_ISSUER": "https://other.example:444"})
    assert token_issuer(config) == "https://other.example:444"


@pytest.mark.parametrize("issuer", [
    "http://auth.example.com", "https://auth.example.com/tenant", "https://a.example?x=1",
    "https://a.example#f", "https://user@a.example", "auth.example.com", 42,
])
def test_an_issuer_rfc_8414_would_refuse_stops_start_up(tmp_path: Path, issuer: object) -> None:
    with pytest.raises(ConfigError, match=r"tokens\.issuer"):
        load_config(_config(tmp_path, {"issuer": issuer}), environ={})


def test_refusals_take_the_rfcs_shapes() -> None:
    bad = introspection_refusal(invalid_token())
    assert isinstance(bad, OAuthError) and (bad.status, bad.error) == (401, "invalid_client")
    assert bad.headers["WWW-Authenticate"] == 'Bearer realm="gateway", error="invalid_token"'
    missing = revocation_refusal(unauthorized())
    assert isinstance(missing, OAuthError) and missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
    scope = introspection_refusal(permission_denied())
    assert isinstance(scope, OAuthError) and (scope.status, scope.error) == (
        401, "insufficient_scope")
    denied = revocation_refusal(permission_denied())
    assert isinstance(denied, OAuthError) and (denied.status, denied.error) == (
        400, "unauthorized_client")
    # What the RFCs do not define keeps the contract's answer.
    for status in (415, 503):
        error = GatewayError(status, "x")
        assert introspection_refusal(error) is error and revocation_refusal(error) is error


def test_form_parameters() -> None:
    assert _form_parameters(b"token=a%2Bb&token_type_hint=&other=1") == {
        "token": "a+b", "other": "1"}
    for raw in (b"token=a&token=b", b"token=%ff", b"&".join([b"a=1"] * 40)):
        with pytest.raises(OAuthError) as refused:
            _form_parameters(raw)
        assert refused.value.error == "invalid_request"

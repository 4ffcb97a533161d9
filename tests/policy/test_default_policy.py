"""policies/default.yaml loads and sends each built-in endpoint to the intended rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import Auth, PolicySet, load_policies, normalize_path

DEFAULT = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"

A = Auth
MOD, ADMIN = ("moderator",), ("admin",)


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies([DEFAULT])


ADMIN_PIN = "admin"  # mtls for every credential but end users' access tokens


@pytest.mark.parametrize(
    ("method", "path", "auth", "roles", "mtls"),
    [
        # client sessions
        ("POST", "/api/v3/sessions", A.PUBLIC, (), False),
        ("POST", "/api/v4/sessions", A.PUBLIC, (), False),
        ("POST", "/api/v5/sessions", A.PUBLIC, (), False),
        ("POST", "/api/v3/session", A.PUBLIC, (), False),
        ("GET", "/api/v3/sessions", A.ACCESS_TOKEN, (), False),
        ("HEAD", "/api/v3/sessions", A.ACCESS_TOKEN, (), False),
        ("DELETE", "/api/v4/sessions", A.ACCESS_TOKEN, (), False),
        ("DELETE", "/api/v4/sessions?userId=u1", A.ADMIN_TOKEN, ADMIN, True),
        ("DELETE", "/api/v4/sessions/users/u1", A.ADMIN_TOKEN, ADMIN, True),
        ("POST", "/api/v3/users/u1/ban", A.ADMIN_TOKEN, ADMIN, True),
        ("DELETE", "/api/v3/users/u1/ban", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/users/u1/ban", A.ADMIN_TOKEN, MOD, True),
        ("HEAD", "/api/v3/users/u1/ban", A.ADMIN_TOKEN, MOD, True),
        # secure mode
        ("GET", "/api/v3/authentication/token", A.SERVER_KEY, (), True),
        ("POST", "/api/v4/authentication/token", A.SERVER_KEY, (), True),
        ("POST", "/api/v3/networks/server-key", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/networks/server-key", A.ADMIN_TOKEN, ADMIN, True),
        ("HEAD", "/api/v3/networks/server-key", A.ADMIN_TOKEN, ADMIN, True),
        # admin tokens and console
        ("POST", "/console/v1/login", A.PUBLIC, (), False),
        ("POST", "/console/v1/logout", A.PUBLIC, (), False),
        ("GET", "/api/v1/admin-token", A.ADMIN_TOKEN, MOD, True),
        ("POST", "/api/v1/admin-token", A.ADMIN_TOKEN, MOD, True),
        ("DELETE", "/api/v1/admin-token", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/admins", A.ADMIN_TOKEN, MOD, True),
        # network settings
        ("GET", "/api/v3/networks/me", A.ADMIN_TOKEN, MOD, True),
        ("HEAD", "/api/v3/networks/me", A.ADMIN_TOKEN, MOD, True),
        ("PUT", "/api/v3/networks/me", A.ADMIN_TOKEN, ADMIN, True),
        ("PUT", "/api/v3/network-settings/security-configs", A.ADMIN_TOKEN, ADMIN, True),
        ("POST", "/api/v3/networks/certificates", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/networks/certificates", A.ADMIN_TOKEN, ADMIN, True),
        ("HEAD", "/api/v3/networks/certificates", A.ADMIN_TOKEN, ADMIN, True),
        ("DELETE", "/api/v3/networks/certificates/c1", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/networks/certificates/ca", A.PUBLIC, (), False),
        ("GET", "/api/v3/notification/setting", A.ADMIN_TOKEN, MOD, True),
        ("POST", "/api/v3/notification/setting", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/audit-logs", A.ADMIN_TOKEN, ADMIN, True),
        ("HEAD", "/api/v3/audit-logs", A.ADMIN_TOKEN, ADMIN, True),
        ("GET", "/api/v3/webhooks", A.ADMIN_TOKEN, ADMIN, True),
        ("POST", "/api/v3/webhooks", A.ADMIN_TOKEN, ADMIN, True),
        ("DELETE", "/api/v3/webhooks/w1", A.ADMIN_TOKEN, ADMIN, True),
        ("POST", "/api/v3/webhooks/w1/test", A.ADMIN_TOKEN, ADMIN, True),
        # operations
        ("GET", "/healthz", A.PUBLIC, (), False),
        ("HEAD", "/healthz", A.PUBLIC, (), False),
        ("GET", "/readyz", A.PUBLIC, (), False),
        ("GET", "/metrics", A.PUBLIC, (), False),
        ("GET", "/.well-known/jwks.json", A.PUBLIC, (), False),
        # OAuth token endpoints
        ("GET", "/.well-known/oauth-authorization-server", A.PUBLIC, (), False),
        ("POST", "/oauth2/introspect", A.SERVER_KEY_OR_ADMIN, ADMIN, True),
        ("POST", "/oauth2/revoke", A.SERVER_KEY_OR_TOKEN, ("user", "admin"), ADMIN_PIN),
        # console UI, real-time channels, the proxy
        ("GET", "/console/", A.PUBLIC, (), False),
        ("GET", "/console/app.js", A.PUBLIC, (), False),
        ("GET", "/socket.io/", A.ACCESS_TOKEN, (), False),
        ("POST", "/socket.io/", A.ACCESS_TOKEN, (), False),
        ("GET", "/mqtt", A.MQTT_CONNECT, (), False),
        ("GET", "/api/v3/posts", A.ANY_TOKEN, (), ADMIN_PIN),
        ("POST", "/api/v3/channels/c1/messages", A.ANY_TOKEN, (), ADMIN_PIN),
    ],
)
def test_routes(
    policies: PolicySet, method: str, path: str, auth: Auth, roles: tuple[str, ...],
    mtls: bool | str,
) -> None:
    path, _, query = path.partition("?")
    rule = policies.match(method, "api.sg.amity.co:443", normalize_path(path), query)
    assert rule is not None
    pinned: bool | str = rule.mtls and ("admin" if rule.mtls_credentials else True)
    assert (rule.auth, rule.roles, pinned) == (auth, roles, mtls), rule.name


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/admin-token"),
        ("POST", "/api/v3/networks/server-key"),
    ],
)
def test_super_admins_are_excluded_by_the_rule(policies: PolicySet, method: str,
                                               path: str) -> None:
    rule = policies.match(method, None, path)
    assert rule is not None and not rule.admits("super-admin") and rule.admits("admin")


@pytest.mark.parametrize(
    ("method", "path", "superseded"),
    [
        ("GET", "/api/v1/admin-token", False),
        ("POST", "/api/v1/admin-token", False),
        ("DELETE", "/api/v1/admin-token", False),
        ("GET", "/api/v3/networks/server-key", False),
        ("POST", "/api/v3/networks/server-key", False),
        ("GET", "/api/v3/networks/certificates", False),
        ("POST", "/api/v3/networks/certificates", False),
        ("DELETE", "/api/v3/networks/certificates/c1", False),
        ("DELETE", "/api/v4/sessions/users/u1", False),
        ("DELETE", "/api/v4/sessions?userId=u", False),
        ("POST", "/oauth2/introspect", False),
        ("POST", "/oauth2/revoke", False),
        ("POST", "/api/v3/webhooks", False),
        ("DELETE", "/api/v3/webhooks/w1", False),
        ("POST", "/api/v3/webhooks/w1/test", False),
        ("GET", "/api/v3/webhooks", True),
        ("GET", "/api/v3/networks/me", True),
        ("PUT", "/api/v3/networks/me", True),
        ("POST", "/api/v3/users/u1/ban", True),
        ("GET", "/api/v3/posts", True),
    ],
)
def test_superseded_admin_tokens_stop_at_credentials(
    policies: PolicySet, method: str, path: str, superseded: bool
) -> None:
    path, _, query = path.partition("?")
    rule = policies.match(method, None, path, query)
    assert rule is not None, (method, path)
    assert rule.allow_superseded is superseded, rule.name


def test_encoded_spelling_reaches_the_same_rule(policies: PolicySet) -> None:
    plain = policies.match("GET", None, normalize_path("/api/v3/audit-logs"))
    sneaky = policies.match("GET", None, normalize_path("//api/v3/%61udit-logs/"))
    assert plain is sneaky is not None


def test_every_admin_token_rule_needs_mtls(policies: PolicySet) -> None:
    admin_rules = [r for r in policies.rules if r.auth in (Auth.ADMIN_TOKEN, Auth.ANY_TOKEN)]
    assert admin_rules and all(r.mtls for r in admin_rules)
    assert all(r.roles for r in admin_rules if r.auth is Auth.ADMIN_TOKEN)


def test_catch_all_api_rule_is_last(policies: PolicySet) -> None:
    last = policies.rules[-1]
    assert (last.path, last.auth, last.methods) == ("/api/**", Auth.ANY_TOKEN, None)

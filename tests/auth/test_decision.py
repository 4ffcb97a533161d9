"""The auth decision as a table: every rule shape x credential kind x credential state,
without a server (gateway.auth.decision is pure)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.auth.claims import Claims
from gateway.auth.decision import (
    NO_CREDENTIAL,
    Allowed,
    BadCredential,
    ConsoleCredential,
    Credential,
    Reason,
    Refused,
    RequestFacts,
    ServerKeyCredential,
    TokenCredential,
    decide,
)
from gateway.auth.state import AuthState
from gateway.policy import Auth, Rule

NOW = 1_800_000_000.0
LEEWAY = 30.0
NET = "net-1"
CERT = "ab" * 32

RULES = {
    "public": Rule(name="public", path="/p", auth=Auth.PUBLIC),
    "deny": Rule(name="deny", path="/d", auth=Auth.DENY),
    "access": Rule(name="access", path="/a", auth=Auth.ACCESS_TOKEN),
    "admin": Rule(name="admin", path="/m", auth=Auth.ADMIN_TOKEN, roles=("admin",)),
    "moderator": Rule(name="moderator", path="/o", auth=Auth.ADMIN_TOKEN, roles=("moderator",)),
    "any": Rule(name="any", path="/y", auth=Auth.ANY_TOKEN),
    "no-super": Rule(name="no-super", path="/n", auth=Auth.ADMIN_TOKEN, roles=("moderator",),
                     exclude_roles=("super-admin",)),
    "credentials": Rule(name="credentials", path="/c", auth=Auth.ADMIN_TOKEN, roles=("admin",),
                        allow_superseded=False),
    "pinned": Rule(name="pinned", path="/t", auth=Auth.ANY_TOKEN, mtls=True),
    "pinned-admin": Rule(name="pinned-admin", path="/u", auth=Auth.ANY_TOKEN, mtls=True,
                         mtls_credentials=frozenset({"admin_token", "console_session"})),
    "server-key": Rule(name="server-key", path="/s", auth=Auth.SERVER_KEY, mtls=True),
    "server-or-admin": Rule(name="server-or-admin", path="/i", auth=Auth.SERVER_KEY_OR_ADMIN,
                            roles=("admin",)),
    "server-or-token": Rule(name="server-or-token", path="/r", auth=Auth.SERVER_KEY_OR_TOKEN,
                            roles=("user", "admin"), allow_superseded=False),
    "stale-serve": Rule(name="stale-serve", path="/z", auth=Auth.ANY_TOKEN, serve_stale=True),
}


def claims(kind: str = "access", role: str | None = None, exp: float = NOW + 3600,
           jti: str = "jti-1", sub: str = "alice", cert: str | None = None) -> TokenCredential:
    return TokenCredential(Claims(sub=sub, nid=NET, kind=kind, jti=jti, iat=NOW - 60, exp=exp,
                                  kid="k1", role=role, cert_sha256=cert))


def console(role: str = "admin", expires_at: float = NOW + 600,
            session: str = "s1", cert: str | None = None) -> ConsoleCredential:
    return ConsoleCredential(session, NET, "root", role, expires_at, cert)


CREDENTIALS: dict[str, Credential] = {
    "none": NO_CREDENTIAL,
    "garbage": BadCredential(Reason.MALFORMED),
    "access": claims(),
    "access-expired": claims(exp=NOW - LEEWAY - 1),
    "access-in-leeway": claims(exp=NOW - LEEWAY + 1),
    "access-revoked": claims(jti="revoked"),
    "access-banned": claims(sub="banned"),
    "moderator": claims("admin", "moderator", jti="mod"),
    "admin": claims("admin", "admin", jti="adm"),
    "super-admin": claims("admin", "super-admin", jti="sup"),
    "admin-in-grace": claims("admin", "admin", jti="grace"),
    "admin-past-grace": claims("admin", "admin", jti="graceless"),
    "console-admin": console(),
    "console-moderator": console("moderator"),
    "console-expired": console(expires_at=NOW - 1),
    "console-ended": console(session="ended"),
    # Bound to CERT (RFC 8705); the table's requests present no certificate.
    "admin-bound": claims("admin", "admin", jti="bound", cert=CERT),
    "console-bound": console(session="bound", cert=CERT),
    "server-key": ServerKeyCredential(NET),
    "wrong-server-key": BadCredential(Reason.WRONG_SERVER_KEY),
}


def state(*, mtls: bool = False) -> AuthState:
    s = AuthState(clock=lambda: NOW)
    s.revoked["revoked"] = NOW + 3600
    s.superseded["grace"] = NOW + 3600
    s.superseded["graceless"] = NOW - 1
    s.banned.add((NET, "banned"))
    s.ended_console_sessions["ended"] = NOW - 5
    s.set_mtls(NET, mtls)
    s.pin(NET, CERT, NOW + 86400)
    return s


@dataclass(frozen=True)
class Want:
    reason: Reason | None  # None: allowed
    status: int = 200
    message: str = ""


OK = Want(None)
UNAUTHORIZED = Want(Reason.MISSING, 401, "Unauthorized")
INVALID = Want(Reason.MALFORMED, 401, "Invalid token")
EXPIRED = Want(Reason.EXPIRED, 401, "token expired")
REVOKED = Want(Reason.REVOKED, 401, "Invalid token")
PAST_GRACE = Want(Reason.SUPERSEDED, 401, "Invalid token")
BANNED = Want(Reason.BANNED, 403, "User is global banned.")
WRONG_KIND_401 = Want(Reason.WRONG_KIND, 401, "Invalid token")
WRONG_KIND_403 = Want(Reason.WRONG_KIND, 403, "Permission denied")
ROLE = Want(Reason.ROLE, 403, "Permission denied")
GRACE_REFUSED = Want(Reason.SUPERSEDED_NOT_ALLOWED, 403, "Permission denied")
SESSION_ENDED = Want(Reason.SESSION_ENDED, 401, "Unauthorized")
UNBOUND = Want(Reason.CERTIFICATE_BINDING, 401, "Invalid token")
DENIED = Want(Reason.DENIED, 403, "Permission denied")
WRONG_KEY = Want(Reason.WRONG_SERVER_KEY, 401, "Unauthorized")

# What every credential gets on the rules whose answer depends on the credential alone.
COMMON = {
    "none": UNAUTHORIZED, "garbage": INVALID, "access-expired": EXPIRED,
    "access-revoked": REVOKED, "admin-past-grace": PAST_GRACE,
    "console-expired": SESSION_ENDED, "console-ended": SESSION_ENDED,
    "server-key": UNAUTHORIZED, "wrong-server-key": WRONG_KEY,
    "admin-bound": UNBOUND, "console-bound": UNBOUND,
}

EXPECTED: dict[str, dict[str, Want]] = {
    "access": {**COMMON, "access": OK, "access-in-leeway": OK, "access-banned": BANNED,
               "moderator": WRONG_KIND_401, "admin": WRONG_KIND_401,
               "super-admin": WRONG_KIND_401, "admin-in-grace": WRONG_KIND_401,
               "console-admin": WRONG_KIND_401, "console-moderator": WRONG_KIND_401},
    "admin": {**COMMON, "access": WRONG_KIND_403, "access-in-leeway": WRONG_KIND_403,
              "access-banned": WRONG_KIND_403, "moderator": ROLE, "admin": OK,
              "super-admin": OK, "admin-in-grace": OK, "console-admin": OK,
              "console-moderator": ROLE},
    "moderator": {**COMMON, "access": WRONG_KIND_403, "access-in-leeway": WRONG_KIND_403,
                  "access-banned": WRONG_KIND_403, "moderator": OK, "admin": OK,
                  "super-admin": OK, "admin-in-grace": OK, "console-admin": OK,
                  "console-moderator": OK},
    "any": {**COMMON, "access": OK, "access-in-leeway": OK, "access-banned": BANNED,
            "moderator": OK, "admin": OK, "super-admin": OK, "admin-in-grace": OK,
            "console-admin": OK, "console-moderator": OK},
    "no-super": {**COMMON, "access": WRONG_KIND_403, "access-in-leeway": WRONG_KIND_403,
                 "access-banned": WRONG_KIND_403, "moderator": OK, "admin": OK,
                 "super-admin": ROLE, "admin-in-grace": OK, "console-admin": OK,
                 "console-moderator": OK},
    "credentials": {**COMMON, "access": WRONG_KIND_403, "access-in-leeway": WRONG_KIND_403,
                    "access-banned": WRONG_KIND_403, "moderator": ROLE, "admin": OK,
                    "super-admin": OK, "admin-in-grace": GRACE_REFUSED, "console-admin": OK,
                    "console-moderator": ROLE},
    "server-or-admin": {**COMMON, "server-key": OK, "access": WRONG_KIND_403,
                        "access-in-leeway": WRONG_KIND_403, "access-banned": WRONG_KIND_403,
                        "moderator": ROLE, "admin": OK, "super-admin": OK,
                        "admin-in-grace": OK, "console-admin": OK, "console-moderator": ROLE},
    # RFC 7009 revocation's rule: the server key, end users and admins; not moderators.
    "server-or-token": {**COMMON, "server-key": OK, "access": OK, "access-in-leeway": OK,
                        "access-banned": BANNED, "moderator": ROLE, "admin": OK,
                        "super-admin": OK, "admin-in-grace": GRACE_REFUSED,
                        "console-admin": OK, "console-moderator": ROLE},
}


@pytest.mark.parametrize(
    ("rule", "credential"),
    [(r, c) for r, by_credential in EXPECTED.items() for c in by_credential],
)
def test_token_rules(rule: str, credential: str) -> None:
    want = EXPECTED[rule][credential]
    got = decide(RULES[rule], CREDENTIALS[credential], state(), NOW, leeway=LEEWAY,
                 facts=RequestFacts())
    if want.reason is None:
        assert isinstance(got, Allowed) and got.principal is not None, got
    else:
        assert isinstance(got, Refused), got
        assert (got.reason, got.status, got.message) == (want.reason, want.status, want.message)


def test_every_rule_and_credential_is_in_the_table() -> None:
    for rule in EXPECTED.values():
        assert set(rule) == set(CREDENTIALS)


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_public_and_deny_ignore_the_credential(credential: str) -> None:
    for name, want in (("public", OK), ("deny", DENIED)):
        got = decide(RULES[name], CREDENTIALS[credential], state(), NOW, leeway=LEEWAY,
                     facts=RequestFacts())
        if want.reason is None:
            assert got == Allowed(None)
        else:
            assert isinstance(got, Refused) and got.reason is want.reason


def test_a_superseded_token_in_grace_carries_its_warning_even_when_refused() -> None:
    for rule in ("admin", "credentials"):
        got = decide(RULES[rule], CREDENTIALS["admin-in-grace"], state(), NOW, leeway=LEEWAY,
                     facts=RequestFacts())
        assert got.warning is not None and "superseded" in got.warning


@pytest.mark.parametrize(
    ("rule", "credential", "cert", "want"),
    [
        # mtls: true pins every credential, access tokens included
        ("pinned", "access", None, Reason.CERTIFICATE_MISSING),
        ("pinned", "access", "cd" * 32, Reason.CERTIFICATE_NOT_ALLOWED),
        ("pinned", "access", CERT, None),
        ("pinned", "admin", None, Reason.CERTIFICATE_MISSING),
        ("pinned", "admin", CERT, None),
        ("pinned", "console-admin", None, Reason.CERTIFICATE_MISSING),
        ("pinned", "console-admin", CERT, None),
        # mtls: admin pins admin credentials only
        ("pinned-admin", "access", None, None),
        ("pinned-admin", "admin", None, Reason.CERTIFICATE_MISSING),
        ("pinned-admin", "console-admin", "cd" * 32, Reason.CERTIFICATE_NOT_ALLOWED),
        # server keys too
        ("server-key", "server-key", None, Reason.CERTIFICATE_MISSING),
        ("server-key", "server-key", CERT, None),
        ("server-key", "wrong-server-key", CERT, Reason.WRONG_SERVER_KEY),
        ("server-key", "admin", CERT, Reason.WRONG_SERVER_KEY),
    ],
)
def test_mtls_pins_when_the_network_has_it_on(rule: str, credential: str, cert: str | None,
                                             want: Reason | None) -> None:
    facts = RequestFacts(method="GET", client_cert=cert, content_type="application/json")
    on = decide(RULES[rule], CREDENTIALS[credential], state(mtls=True), NOW, leeway=LEEWAY,
                facts=facts)
    assert (on.reason if isinstance(on, Refused) else None) is want
    off = decide(RULES[rule], CREDENTIALS[credential], state(mtls=False), NOW, leeway=LEEWAY,
                 facts=facts)
    if want in (Reason.CERTIFICATE_MISSING, Reason.CERTIFICATE_NOT_ALLOWED):
        assert isinstance(off, Allowed)  # mTLS off for the network: no certificate needed


OTHER_CERT = "cd" * 32  # pinned for the same network too


@pytest.mark.parametrize(("credential", "cert", "mtls", "want"), [
    ("admin-bound", CERT, False, None),
    ("admin-bound", CERT, True, None),
    ("admin-bound", None, False, Reason.CERTIFICATE_BINDING),
    # before the pin: a stolen bound token says nothing about mTLS
    ("admin-bound", None, True, Reason.CERTIFICATE_BINDING),
    ("admin-bound", OTHER_CERT, True, Reason.CERTIFICATE_BINDING),
    ("console-bound", CERT, True, None),
    ("console-bound", OTHER_CERT, False, Reason.CERTIFICATE_BINDING),
    ("console-bound", None, True, Reason.CERTIFICATE_BINDING),
    ("admin", OTHER_CERT, False, None),  # unbound: any certificate, or none
])
def test_a_bound_credential_needs_its_certificate(credential: str, cert: str | None,
                                                  mtls: bool, want: Reason | None) -> None:
    s = state(mtls=mtls)
    s.pin(NET, OTHER_CERT, NOW + 86400)
    for rule in ("admin", "pinned", "any"):
        got = decide(RULES[rule], CREDENTIALS[credential], s, NOW, leeway=LEEWAY,
                     facts=RequestFacts(client_cert=cert, upgrade=True))
        assert (got.reason if isinstance(got, Refused) else None) is want, rule
        if want is not None:
            assert isinstance(got, Refused) and (got.status, got.message) == (
                401, "Invalid token")


def test_an_expired_pinned_certificate_is_not_allowed() -> None:
    s = state(mtls=True)
    s.pin(NET, CERT, NOW - 1)
    got = decide(RULES["pinned"], CREDENTIALS["access"], s, NOW, leeway=LEEWAY,
                 facts=RequestFacts(client_cert=CERT))
    assert isinstance(got, Refused) and got.reason is Reason.CERTIFICATE_NOT_ALLOWED


@pytest.mark.parametrize(
    ("rule", "serve_stale_allowed"), [("any", False), ("stale-serve", True)]
)
def test_stale_state_refuses_unless_the_rule_serves_it(rule: str,
                                                       serve_stale_allowed: bool) -> None:
    got = decide(RULES[rule], CREDENTIALS["access"], state(), NOW, leeway=LEEWAY,
                 facts=RequestFacts(), stale=None if serve_stale_allowed else "store down")
    if serve_stale_allowed:
        assert isinstance(got, Allowed)
    else:
        assert isinstance(got, Refused) and (got.reason, got.status) == (Reason.STALE, 503)


OWN = "https://gw.example"

# (method, content type, Origin, Sec-Fetch-Site, upgrade) -> reason or None
CSRF_CASES = [
    ("GET", None, "https://evil.example", "cross-site", False, None),  # reads are safe
    ("POST", "application/json", None, None, False, None),
    ("POST", "application/json; charset=utf-8", OWN, "same-origin", False, None),
    ("PUT", "Application/JSON", OWN, None, False, None),
    ("POST", "application/json", "https://evil.example", None, False, Reason.CROSS_SITE),
    ("POST", "application/json", "https://sub.gw.example", None, False, Reason.CROSS_SITE),
    ("POST", "application/json", "https://gw.example:8443", None, False, Reason.CROSS_SITE),
    ("POST", "application/json", "null", None, False, Reason.CROSS_SITE),
    ("DELETE", "application/json", None, "cross-site", False, Reason.CROSS_SITE),
    ("POST", "application/json", None, "same-site", False, Reason.CROSS_SITE),
    ("POST", "text/plain", None, None, False, Reason.CONTENT_TYPE),
    ("POST", "application/x-www-form-urlencoded", OWN, None, False, Reason.CONTENT_TYPE),
    ("PUT", "multipart/form-data; boundary=x", None, None, False, Reason.CONTENT_TYPE),
    ("DELETE", None, None, None, False, Reason.CONTENT_TYPE),
    ("GET", None, "https://evil.example", None, True, Reason.CROSS_SITE),  # WebSocket
    ("GET", None, OWN, None, True, None),
]


@pytest.mark.parametrize(("method", "content_type", "origin", "site", "upgrade", "want"),
                         CSRF_CASES)
def test_console_cookie_writes_come_from_the_console_only(
    method: str, content_type: str | None, origin: str | None, site: str | None,
    upgrade: bool, want: Reason | None,
) -> None:
    facts = RequestFacts(method=method, content_type=content_type, origin=origin,
                         fetch_site=site, own_origin=OWN, upgrade=upgrade)
    got = decide(RULES["admin"], CREDENTIALS["console-admin"], state(), NOW, leeway=LEEWAY,
                 facts=facts)
    assert (got.reason if isinstance(got, Refused) else None) is want
    if want is Reason.CONTENT_TYPE:
        assert isinstance(got, Refused) and got.status == 415
    # A bearer token is never sent by a browser on its own: the same request passes.
    bearer = decide(RULES["admin"], CREDENTIALS["admin"], state(), NOW, leeway=LEEWAY,
                    facts=facts)
    assert isinstance(bearer, Allowed)


def test_principals_name_their_credential() -> None:
    kinds = {}
    for name in ("access", "admin", "console-admin"):
        got = decide(RULES["any"], CREDENTIALS[name], state(), NOW, leeway=LEEWAY,
                     facts=RequestFacts(content_type="application/json"))
        assert isinstance(got, Allowed) and got.principal is not None
        kinds[name] = (got.principal.kind, got.principal.credential)
    assert kinds == {"access": ("access", "access_token"), "admin": ("admin", "admin_token"),
                     "console-admin": ("admin", "console_session")}


def test_the_table_covers_every_reason() -> None:
    seen = {w.reason for by in EXPECTED.values() for w in by.values()} | {
        Reason.DENIED, Reason.CERTIFICATE_MISSING, Reason.CERTIFICATE_NOT_ALLOWED,
        Reason.STALE, Reason.CROSS_SITE, Reason.CONTENT_TYPE,
        # The gate's, not the decision's: tests/auth/test_admin_tokens.py
        # ::test_a_token_the_store_never_recorded_may_not_write.
        Reason.NOT_LIVE}
    assert set(Reason) <= seen


@pytest.mark.parametrize(("days_left", "warned"), [(40, False), (30, True), (2, True)])
def test_an_admin_token_near_its_end_is_warned(days_left: int, warned: bool) -> None:
    token = claims("admin", "admin", jti="old-admin", exp=NOW + days_left * 86400)
    got = decide(RULES["admin"], token, state(), NOW, leeway=LEEWAY, facts=RequestFacts(),
                 expiry_warning=30 * 86400)
    assert isinstance(got, Allowed)
    assert (got.warning is not None and "expires at" in got.warning) is warned
    access = decide(RULES["any"], claims(exp=NOW + 86400), state(), NOW, leeway=LEEWAY,
                    facts=RequestFacts(), expiry_warning=30 * 86400)
    assert isinstance(access, Allowed) and access.warning is None  # end users: never

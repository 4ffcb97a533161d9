"""The one auth decision: (rule, credential, state, time, certificate, staleness) ->
a principal or a refusal with its reason.

Pure: the caller has already done the I/O (decoded the token's signature, looked the
console session or the server key up) and passes what it found. HTTP requests,
WebSocket upgrades and the MQTT CONNECT gate all come here, so a rule means the same
thing on every path. What a handler used to check by hand (token kind, roles, roles
excluded, mTLS pinning, bans, what a superseded admin token may do, cookie-write
origin rules) is data of the rule or of the request facts below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.auth.claims import Claims
from gateway.auth.principal import Principal
from gateway.auth.state import AuthState
from gateway.policy.model import SERVER_KEY_WHEN_SENT, Auth, Rule
from gateway.timefmt import iso

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ADMIN_AUTH = (Auth.ADMIN_TOKEN, Auth.SERVER_KEY_OR_ADMIN)


class Reason(enum.StrEnum):
    """Why a credential was refused: a label of the refusals counter and the access log."""

    DENIED = "denied"
    MISSING = "missing"
    MALFORMED = "malformed"  # garbage, bad signature, unknown key, bad claims
    EXPIRED = "expired"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"  # an admin token past its rotation grace
    SUPERSEDED_NOT_ALLOWED = "superseded_not_allowed"  # in grace, on a sensitive rule
    BANNED = "banned"
    WRONG_KIND = "wrong_kind"
    ROLE = "role"
    SESSION_ENDED = "session_ended"  # a console cookie that is unknown, ended or expired
    WRONG_SERVER_KEY = "wrong_server_key"
    CERTIFICATE_MISSING = "certificate_missing"
    CERTIFICATE_NOT_ALLOWED = "certificate_not_allowed"
    # a certificate-bound token or session (RFC 8705) without its certificate
    CERTIFICATE_BINDING = "certificate_binding"
    STALE = "stale"
    CROSS_SITE = "cross_site"  # a console-cookie write from another origin
    CONTENT_TYPE = "content_type"  # a console-cookie write that is not JSON
    # A write's own check found the credential ended, before this worker's state knew it.
    NOT_LIVE = "not_live"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Reason
    status: int
    message: str
    code: int | None = None  # None: the contract's code for the status
    warning: str | None = None  # a superseded admin token's `Warning`, refused or not


# -- what the request presented, after the I/O ------------------------------------------


@dataclass(frozen=True, slots=True)
class NoCredential:
    pass


@dataclass(frozen=True, slots=True)
class BadCredential:
    """A token that did not decode, a cookie with no live session, a wrong server key."""

    reason: Reason


@dataclass(frozen=True, slots=True, init=False)
class TokenCredential:
    claims: Claims

    # __init__ written out (init=False): see Principal.
    def __init__(self, claims: Claims) -> None:
        object.__setattr__(self, "claims", claims)


@dataclass(frozen=True, slots=True)
class ConsoleCredential:
    session_id: str  # the stored hash of the cookie
    network_id: str
    username: str
    role: str
    expires_at: float
    cert_sha256: str | None = None  # opened with this certificate: valid with it only


@dataclass(frozen=True, slots=True)
class ServerKeyCredential:
    network_id: str


Credential = (
    NoCredential | BadCredential | TokenCredential | ConsoleCredential | ServerKeyCredential
)
NO_CREDENTIAL = NoCredential()


@dataclass(frozen=True, slots=True, init=False)
class RequestFacts:
    """What of the request itself the decision reads."""

    method: str
    client_cert: str | None  # SHA-256 of the verified client certificate
    upgrade: bool  # a WebSocket handshake
    content_type: str | None
    origin: str | None
    fetch_site: str | None  # Sec-Fetch-Site
    own_origin: str | None  # scheme://host the request was addressed to

    # __init__ written out (init=False): see Principal.
    def __init__(self, method: str = "GET", client_cert: str | None = None,
                 upgrade: bool = False, content_type: str | None = None,
                 origin: str | None = None, fetch_site: str | None = None,
                 own_origin: str | None = None) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "client_cert", client_cert)
        object.__setattr__(self, "upgrade", upgrade)
        object.__setattr__(self, "content_type", content_type)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "fetch_site", fetch_site)
        object.__setattr__(self, "own_origin", own_origin)


@dataclass(frozen=True, slots=True, init=False)
class Allowed:
    principal: Principal | None
    warning: str | None  # the `Warning` every answer to the request carries

    # __init__ written out (init=False): see Principal.
    def __init__(self, principal: Principal | None, warning: str | None = None) -> None:
        object.__setattr__(self, "principal", principal)
        object.__setattr__(self, "warning", warning)


Decision = Allowed | Refused
PUBLIC = Allowed(None)


def decide(
    rule: Rule,
    credential: Credential,
    state: AuthState,
    now: float,
    *,
    leeway: float,
    facts: RequestFacts,
    stale: str | None = None,
    expiry_warning: float = 0.0,
) -> Decision:
    """The answer `rule` gives to `credential` at `now`. `stale` is why the in-memory
    state can no longer be trusted (store unreachable past its bound), else None.
    An admin token within `expiry_warning` seconds of its end is admitted with a
    `Warning` saying so (`notices.expiry_warning`)."""
    if rule.auth is Auth.DENY:
        return Refused(Reason.DENIED, 403, "Permission denied", 400301)
    if rule.auth is Auth.PUBLIC or rule.auth is Auth.MQTT_CONNECT:
        return PUBLIC
    if stale is not None and not rule.serve_stale:
        return Refused(Reason.STALE, 503, stale)
    if rule.auth is Auth.SERVER_KEY or (isinstance(credential, ServerKeyCredential) and (
            rule.auth in SERVER_KEY_WHEN_SENT)):
        return _server_key(rule, credential, state, now, facts)
    if isinstance(credential, NoCredential | ServerKeyCredential):
        return Refused(Reason.MISSING, 401, "Unauthorized")
    if isinstance(credential, BadCredential):
        return _bad(credential.reason)
    if isinstance(credential, ConsoleCredential):
        return _console(rule, credential, state, now, facts)
    return _token(rule, credential.claims, state, now, leeway, facts, expiry_warning)


def _bad(reason: Reason) -> Refused:
    if reason is Reason.SESSION_ENDED or reason is Reason.WRONG_SERVER_KEY:
        return Refused(reason, 401, "Unauthorized")
    return Refused(reason, 401, "Invalid token")


def _token(rule: Rule, claims: Claims, state: AuthState, now: float, leeway: float,
           facts: RequestFacts, expiry_warning: float = 0.0) -> Decision:
    if claims.exp + leeway < now:
        return Refused(Reason.EXPIRED, 401, "token expired")
    if state.is_revoked(claims.jti):
        return Refused(Reason.REVOKED, 401, "Invalid token")
    if _unbound(claims.cert_sha256, facts):
        return Refused(Reason.CERTIFICATE_BINDING, 401, "Invalid token")
    warning = None
    grace_end = state.superseded.get(claims.jti)
    if grace_end is not None:
        if grace_end < now:
            return Refused(Reason.SUPERSEDED, 401, "Invalid token")
        warning = f'299 gateway "admin token superseded; valid until {iso(grace_end)}"'
        if not rule.allow_superseded:
            return Refused(Reason.SUPERSEDED_NOT_ALLOWED, 403, "Permission denied", 400301,
                           warning)
    if rule.auth is Auth.ACCESS_TOKEN and claims.kind != "access":
        return Refused(Reason.WRONG_KIND, 401, "Invalid token")
    if rule.auth in _ADMIN_AUTH and claims.kind != "admin":
        return Refused(Reason.WRONG_KIND, 403, "Permission denied", 400301)
    access = claims.kind == "access"
    principal = Principal(
        user_id=claims.sub, network_id=claims.nid, kind=claims.kind,
        role="user" if access else (claims.role or ""), token_id=claims.jti,
        expires_at=claims.exp, credential="access_token" if access else "admin_token",
        grace_end=grace_end, kid=claims.kid,
    )
    if access and state.is_banned(claims.nid, claims.sub):
        return Refused(Reason.BANNED, 403, "User is global banned.", 400312)
    refused = _certificate(rule, principal.network_id, state, now, facts, principal.credential)
    if refused is not None:
        return refused
    if not rule.admits(principal.role):
        return Refused(Reason.ROLE, 403, "Permission denied", 400301)
    if warning is None and not access and claims.exp - now <= expiry_warning:
        warning = f'299 gateway "admin token expires at {iso(claims.exp)}; generate a new one"'
    return Allowed(principal, warning)


def _console(rule: Rule, session: ConsoleCredential, state: AuthState, now: float,
             facts: RequestFacts) -> Decision:
    if session.expires_at < now or session.session_id in state.ended_console_sessions:
        return Refused(Reason.SESSION_ENDED, 401, "Unauthorized")
    if _unbound(session.cert_sha256, facts):
        return Refused(Reason.CERTIFICATE_BINDING, 401, "Invalid token")
    if rule.auth is Auth.ACCESS_TOKEN:
        return Refused(Reason.WRONG_KIND, 401, "Invalid token")
    refused = _cross_site(facts) or _certificate(
        rule, session.network_id, state, now, facts, "console_session")
    if refused is not None:
        return refused
    if not rule.admits(session.role):
        return Refused(Reason.ROLE, 403, "Permission denied", 400301)
    return Allowed(Principal(
        user_id=session.username, network_id=session.network_id, kind="admin",
        role=session.role, expires_at=session.expires_at, credential="console_session",
        session_id=session.session_id,
    ))


def _server_key(rule: Rule, credential: Credential, state: AuthState, now: float,
                facts: RequestFacts) -> Decision:
    if not isinstance(credential, ServerKeyCredential):
        return Refused(Reason.WRONG_SERVER_KEY, 401, "Unauthorized")
    refused = _certificate(rule, credential.network_id, state, now, facts, "server_key")
    if refused is not None:
        return refused
    return Allowed(Principal(user_id="", network_id=credential.network_id, kind="server",
                             role="server", credential="server_key"))


def _unbound(bound: str | None, facts: RequestFacts) -> bool:
    """A credential bound to a certificate (RFC 8705) presented without it: whoever holds
    it stole it, whatever the rule, so this is checked before kinds, roles and pins."""
    return bound is not None and facts.client_cert != bound


def _certificate(rule: Rule, network_id: str, state: AuthState, now: float,
                 facts: RequestFacts, credential: str) -> Refused | None:
    """mTLS pinning: when the rule asks for it (for every credential, or the ones it
    names) and the network has mTLS on, the request's certificate must be one of the
    network's current uploads."""
    if not rule.mtls or not state.requires_client_certificate(network_id):
        return None
    if rule.mtls_credentials is not None and credential not in rule.mtls_credentials:
        return None
    if facts.client_cert is None:
        return Refused(Reason.CERTIFICATE_MISSING, 401, "client certificate required")
    not_after = state.pinned_until(network_id, facts.client_cert)
    # An expired certificate can still be on a connection opened before its notAfter.
    if not_after is None or now > not_after:
        return Refused(Reason.CERTIFICATE_NOT_ALLOWED, 403, "client certificate not allowed",
                       400300)
    return None


def _cross_site(facts: RequestFacts) -> Refused | None:
    """A browser sends the console cookie with requests other sites make it send: a
    state-changing call (or a WebSocket) riding on the cookie alone must come from the
    gateway's own pages. Bearer tokens are never sent implicitly and are not checked."""
    if facts.method in SAFE_METHODS and not facts.upgrade:
        return None
    if facts.fetch_site in ("cross-site", "same-site"):
        return Refused(Reason.CROSS_SITE, 403, "Permission denied", 400301)
    if facts.origin is not None and facts.origin != facts.own_origin:
        return Refused(Reason.CROSS_SITE, 403, "Permission denied", 400301)
    if facts.upgrade:
        return None
    media_type = (facts.content_type or "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return Refused(Reason.CONTENT_TYPE, 415,
                       "Content-Type must be application/json for console writes")
    return None

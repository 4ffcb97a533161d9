"""The standard token endpoints: introspection (RFC 7662), revocation (RFC 7009) and the
authorization server metadata that names them (RFC 8414).

Who may call is the rules' business (policies/default.yaml); whether the presented token
is valid is the one decision's: `decide` with a rule that takes any token, exactly what a
request carrying it would get. Which token a caller may revoke depends on the token, so
it is the pure `gateway.auth.permissions.may_revoke_token`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.audit import audited
from gateway.api.caller import caller
from gateway.api.oauth_errors import (
    NO_STORE,
    OAuthError,
    introspection_refusal,
    oauth_parameters,
    required,
    revocation_refusal,
)
from gateway.api.routes import endpoint
from gateway.auth.binding import cnf_claim
from gateway.auth.claims import Claims
from gateway.auth.decision import (
    Allowed,
    Decision,
    Reason,
    Refused,
    RequestFacts,
    TokenCredential,
    decide,
)
from gateway.auth.gate import token_credential
from gateway.auth.permissions import may_revoke_token
from gateway.auth.principal import Principal
from gateway.keys import AUTH_STATE, FEED, STORE, TOKENS
from gateway.policy.model import Auth, Rule

INTROSPECTION_PATH = "/oauth2/introspect"
REVOCATION_PATH = "/oauth2/revoke"
METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"
# RFC 7009 section 2.1's registered hints. The gateway issues no refresh tokens, and a
# hint that finds nothing widens the search to every type anyway.
TOKEN_TYPE_HINTS = frozenset({"access_token", "refresh_token"})
SERVER_KEY_ACTOR = "server-key"  # the audit log's actor for the network's server key

# The presented token judged as a request carrying it on an `any_token` rule would be:
# expiry with the leeway, revocation, a superseded admin token's grace, bans. No mTLS or
# roles: those are about a request, not the token. Nor the certificate a token is bound
# to: the caller asks about the token, not as its holder, so the facts are the holder's
# (RFC 8705 section 3.2: introspection reports the binding in `cnf` instead).
_ANY_TOKEN = Rule(name="oauth2-token", path=INTROSPECTION_PATH, auth=Auth.ANY_TOKEN)
# A token already dead for good: revoking it changes nothing (and is still a 200).
_DEAD = frozenset({Reason.EXPIRED, Reason.REVOKED, Reason.SUPERSEDED})
INACTIVE = {"active": False}


def _judged(request: web.Request, token: str) -> tuple[Claims | None, Decision]:
    tokens = request.app[TOKENS]
    state = request.app[AUTH_STATE]
    credential = token_credential(tokens, token)
    claims = credential.claims if isinstance(credential, TokenCredential) else None
    facts = RequestFacts(method="POST", client_cert=claims.cert_sha256 if claims else None)
    decision = decide(_ANY_TOKEN, credential, state, state.clock(), leeway=tokens.leeway,
                      facts=facts)
    return claims, decision


def _active(claims: Claims, holder: Principal) -> dict[str, Any]:
    """RFC 7662 section 2.2's members, then the gateway's own claims. `token_type` is an
    access token type of RFC 6749 section 7.1 (Bearer), as section 2.2 defines it."""
    answer: dict[str, Any] = {
        "active": True, "token_type": "Bearer", "client_id": claims.nid, "sub": claims.sub,
        "iss": claims.iss, "iat": int(claims.iat), "exp": int(claims.exp), "jti": claims.jti,
        "nid": claims.nid, "kind": claims.kind, "role": holder.role,
    }
    if claims.kind == "admin":
        answer["username"] = claims.sub
    if claims.did is not None:
        answer["did"] = claims.did
    if claims.cert_sha256 is not None:  # RFC 8705 section 3.2
        answer["cnf"] = cnf_claim(claims.cert_sha256)
    return answer


async def introspect(request: web.Request) -> web.Response:
    """`{"active": false}` for anything not valid now in the caller's network, whatever
    the reason (RFC 7662 section 2.2: nothing more is said about an inactive token)."""
    network_id = caller(request).network_id
    token = required(await oauth_parameters(request), "token")  # the hint is only a hint
    claims, decision = _judged(request, token)
    holder = decision.principal if isinstance(decision, Allowed) else None
    if claims is None or holder is None or holder.network_id != network_id:
        return web.json_response(INACTIVE, headers=NO_STORE)
    return web.json_response(_active(claims, holder), headers=NO_STORE)


async def revoke(request: web.Request) -> web.Response:
    """200 with an empty body when the token is revoked, and for tokens that are unknown,
    invalid or already dead (RFC 7009 section 2.2). A live token the caller may not revoke
    is refused with 400 `unauthorized_client` (section 2.1: the server checks that the
    token was issued to the client asking)."""
    principal = caller(request)
    parameters = await oauth_parameters(request)
    token = required(parameters, "token")
    hint = parameters.get("token_type_hint")
    if hint is not None and hint not in TOKEN_TYPE_HINTS:
        raise OAuthError(400, "unsupported_token_type",
                         "token_type_hint must be access_token or refresh_token")
    claims, decision = _judged(request, token)
    if claims is None or (isinstance(decision, Refused) and decision.reason in _DEAD):
        return web.Response(status=200)
    if not may_revoke_token(principal, claims):
        raise OAuthError(400, "unauthorized_client", "this token is not yours to revoke")
    actor = SERVER_KEY_ACTOR if principal.kind == "server" else None
    async with audited(request, "token.revoke", claims.sub, actor=actor):
        await request.app[STORE].revoke_token(claims.nid, claims.jti)
    await request.app[FEED].catch_up()  # refused here at once, elsewhere within the bound
    return web.Response(status=200)


async def authorization_server_metadata(request: web.Request) -> web.Response:
    """RFC 8414 section 2. There is no authorization or token endpoint: tokens come from
    the session API (`x-api-key`), which no OAuth grant describes, so the lists of grant
    and response types are empty. The server key is not a registered client
    authentication method: `server_key_header` names it."""
    issuer = request.app[TOKENS].issuer
    return web.json_response({
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "introspection_endpoint_auth_methods_supported": ["Bearer"],
        "revocation_endpoint_auth_methods_supported": ["Bearer"],
        "server_key_header": "x-server-key",
        "response_types_supported": [],
        "grant_types_supported": [],
        "token_endpoint_auth_methods_supported": [],
    })


ENDPOINTS = (
    endpoint("POST", INTROSPECTION_PATH, introspect, refusal=introspection_refusal),
    endpoint("POST", REVOCATION_PATH, revoke, refusal=revocation_refusal),
    endpoint("GET", METADATA_PATH, authorization_server_metadata),
)

"""Permissions that depend on the target of an action, not only on the rule: pure."""

from __future__ import annotations

from gateway.auth.claims import Claims
from gateway.auth.principal import Principal
from gateway.policy.model import role_allows


def may_revoke_admin(actor: str, actor_role: str, target: str, target_role: str) -> bool:
    """Admins revoke their own token; super admins also any admin's or moderator's in
    their network (API.md section 3). The rule has already required `admin` or above."""
    if actor == target:
        return True
    return actor_role == "super-admin" and target_role in ("admin", "moderator")


def may_revoke_token(actor: Principal, target: Claims) -> bool:
    """RFC 7009 revocation of one token: by its holder presenting it; by the network's
    server key (end users' access tokens: the server already vouches for its users); by an
    admin of its network (access tokens, and admin tokens as `may_revoke_admin` says)."""
    if actor.token_id and actor.token_id == target.jti:
        return True
    if actor.network_id != target.nid:
        return False
    if actor.kind == "server":
        return target.kind == "access"
    if actor.kind != "admin" or not role_allows(("admin",), actor.role):
        return False
    if target.kind == "access":
        return True
    return may_revoke_admin(actor.user_id, actor.role, target.sub, target.role or "")

"""Permissions that depend on the target of an action, not only on the rule: pure."""

from __future__ import annotations


def may_revoke_admin(actor: str, actor_role: str, target: str, target_role: str) -> bool:
    """Admins revoke their own token; super admins also any admin's or moderator's in
    their network (API.md section 3). The rule has already required `admin` or above."""
    if actor == target:
        return True
    return actor_role == "super-admin" and target_role in ("admin", "moderator")

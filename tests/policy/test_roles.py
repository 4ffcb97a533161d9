"""Role hierarchy: super-admin > admin > moderator; user stands apart."""

from __future__ import annotations

import pytest

from gateway.policy import Auth, Rule, role_allows

ALL = ("super-admin", "admin", "moderator", "user")


@pytest.mark.parametrize(
    ("required", "admitted"),
    [
        ((), ALL),
        (("super-admin",), ("super-admin",)),
        (("admin",), ("super-admin", "admin")),
        (("moderator",), ("super-admin", "admin", "moderator")),
        (("user",), ("user",)),
        (("admin", "user"), ("super-admin", "admin", "user")),
        (("moderator", "super-admin"), ("super-admin", "admin", "moderator")),
    ],
)
def test_role_table(required: tuple[str, ...], admitted: tuple[str, ...]) -> None:
    for role in ALL:
        assert role_allows(required, role) is (role in admitted), role


@pytest.mark.parametrize("role", ["", "root", "Admin", "superadmin"])
def test_unknown_roles_are_refused(role: str) -> None:
    assert role_allows(("moderator",), role) is False
    assert role_allows(("user",), role) is False
    assert role_allows((), role) is True  # no requirement at all


def test_rule_admits() -> None:
    rule = Rule(name="x", path="/x", auth=Auth.ADMIN_TOKEN, roles=("admin",))
    assert rule.admits("super-admin")
    assert not rule.admits("moderator")

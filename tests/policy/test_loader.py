"""Loading policy files: precedence across files and error messages that point at the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.policy import Auth, PolicyError, load_policies

GOOD_RULE = "  - {name: ok, match: {path: /ok}, auth: public}\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_all_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
rules:
  - name: api
    match: {path: "/api/**", methods: [get, Post], hosts: ["API.eu.amity.co:443", "[::1]"]}
    auth: any_token
    roles: [admin, admin, user]
    mtls: true
  - name: open
    match: {path: /open}
    auth: public
""",
    )
    policies = load_policies([path])
    api, open_ = policies.rules
    assert api.name == "api"
    assert api.path == "/api/**"
    assert api.methods == frozenset({"GET", "POST"})
    assert api.hosts == frozenset({"api.eu.amity.co", "::1"})
    assert api.auth is Auth.ANY_TOKEN
    assert api.roles == ("admin", "user")
    assert api.mtls is True
    assert api.source == str(path)
    assert (api.index, open_.index) == (0, 1)
    assert open_.methods is None and open_.hosts is None
    assert open_.roles == () and open_.mtls is False


def test_first_match_wins_across_files(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "first.yaml",
        """
rules:
  - {name: block-admin, match: {path: "/api/admin/**"}, auth: deny}
  - {name: public-get, match: {path: "/api/public/*", methods: [GET]}, auth: public}
""",
    )
    second = write(
        tmp_path,
        "second.yaml",
        """
rules:
  - {name: sessions, match: {path: /api/v3/sessions}, auth: access_token}
  - {name: admin-area, match: {path: "/api/admin/x"}, auth: public}
  - {name: api, match: {path: "/api/**"}, auth: any_token}
""",
    )
    policies = load_policies([first, second])
    assert [r.index for r in policies.rules] == [0, 1, 2, 3, 4]

    def name(method: str, path: str) -> str | None:
        rule = policies.match(method, None, path)
        return None if rule is None else rule.name

    assert name("GET", "/api/admin/x") == "block-admin"  # the earlier file wins
    assert name("GET", "/api/public/p1") == "public-get"
    assert name("POST", "/api/public/p1") == "api"
    assert name("GET", "/api/v3/sessions") == "sessions"
    assert name("GET", "/other") is None
    reverse = load_policies([second, first])
    reversed_rule = reverse.match("GET", None, "/api/admin/x")
    assert reversed_rule is not None and reversed_rule.name == "admin-area"


def test_empty_rule_list_and_no_files(tmp_path: Path) -> None:
    assert load_policies([write(tmp_path, "e.yaml", "rules: []\n")]).rules == ()
    assert load_policies([]).rules == ()


def rule_file(body: str) -> str:
    """A file whose 2nd rule is `body` (indented as a list item)."""
    return "rules:\n" + GOOD_RULE + "  - " + body.strip().replace("\n", "\n    ") + "\n"


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        # rule-level keys and types
        (
            "{name: api, match: {path: /a}, auth: public, mtl: true}",
            "mtl",
            "unknown key, expected one of name, match, auth, roles, exclude_roles, superseded,"
            " mtls",
        ),
        ("{name: api, auth: public}", "match", "got null, expected a mapping"),
        ("{name: api, match: /a, auth: public}", "match", "got '/a', expected a mapping"),
        (
            "{name: api, match: {path: /a}}",
            "auth",
            "missing, expected one of public, access_token, admin_token, any_token, deny",
        ),
        ("{name: api, match: {path: /a}, auth: token}", "auth", "got 'token', expected one of"),
        ("{name: api, match: {path: /a}, auth: [public]}", "auth", "got ['public']"),
        (
            "{name: api, match: {path: /a}, auth: public, mtls: 'yes please'}",
            "mtls",
            "got 'yes please', expected true, false or admin",
        ),
        ("{name: api, match: {path: /a}, auth: public, mtls: 1}", "mtls", "got 1"),
        # match
        (
            "{name: api, match: {path: api/**}, auth: public}",
            "match.path",
            "got 'api/**', expected a path starting with /",
        ),
        ("{name: api, match: {methods: [GET]}, auth: public}", "match.path", "got null"),
        ("{name: api, match: {path: 7}, auth: public}", "match.path", "got 7"),
        (
            "{name: api, match: {path: /foo*}, auth: public}",
            "match.path",
            "got '/foo*', expected '*' or '**' as a whole segment",
        ),
        (
            "{name: api, match: {path: /a, verb: GET}, auth: public}",
            "match.verb",
            "unknown key, expected one of path, methods, hosts, query",
        ),
        (
            "{name: api, match: {path: /a, methods: GET}, auth: public}",
            "match.methods",
            "got 'GET', expected a non-empty list",
        ),
        (
            "{name: api, match: {path: /a, methods: []}, auth: public}",
            "match.methods",
            "got [], expected a non-empty list",
        ),
        (
            "{name: api, match: {path: /a, methods: [GET, GTE]}, auth: public}",
            "match.methods[1]",
            "got 'GTE', expected one of GET, HEAD",
        ),
        ("{name: api, match: {path: /a, methods: [1]}, auth: public}", "match.methods[0]", "got 1"),
        (
            "{name: api, match: {path: /a, hosts: [ok.example, 'bad host']}, auth: public}",
            "match.hosts[1]",
            "got 'bad host', expected a host name or IP address",
        ),
        (
            "{name: api, match: {path: /a, hosts: ['*.example.com']}, auth: public}",
            "match.hosts[0]",
            "got '*.example.com'",
        ),
        (
            "{name: api, match: {path: /a, hosts: example.com}, auth: public}",
            "match.hosts",
            "got 'example.com', expected a non-empty list",
        ),
        # roles
        (
            "{name: api, match: {path: /a}, auth: any_token, roles: [root]}",
            "roles[0]",
            "got 'root', expected one of super-admin, admin, moderator, user",
        ),
        (
            "{name: api, match: {path: /a}, auth: any_token, roles: admin}",
            "roles",
            "got 'admin', expected a list of roles",
        ),
        (
            "{name: api, match: {path: /a}, auth: public, roles: [admin]}",
            "roles",
            "expected no roles with auth public",
        ),
        (
            "{name: api, match: {path: /a}, auth: admin_token, roles: [user]}",
            "roles",
            "expected console roles with auth admin_token",
        ),
        (
            "{name: api, match: {path: /a}, auth: access_token, roles: [admin]}",
            "roles",
            "expected only user with auth access_token",
        ),
    ],
)
def test_rule_errors_name_file_rule_and_field(
    tmp_path: Path, body: str, field: str, detail: str
) -> None:
    path = write(tmp_path, "broken.yaml", rule_file(body))
    prefix = f"{path}: rule 2 ('api'): {field}: "
    with pytest.raises(PolicyError) as caught:
        load_policies([path])
    message = str(caught.value)
    assert message.startswith(prefix), message
    assert detail in message, message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{match: {path: /a}, auth: public}", "rule 2: name: got null, expected a non-empty"),
        ("{name: '', match: {path: /a}, auth: public}", "rule 2: name: got ''"),
        ("{name: '  ', match: {path: /a}, auth: public}", "rule 2: name: got '  '"),
        ("{name: 5, match: {path: /a}, auth: public}", "rule 2: name: got 5"),
        ("just-a-string", "rule 2: got 'just-a-string', expected a mapping"),
    ],
)
def test_rule_without_usable_name(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, "broken.yaml", rule_file(body))
    with pytest.raises(PolicyError, match=re.escape(f"{path}: {expected}")):
        load_policies([path])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "got null, expected a mapping with a rules list"),
        ("- a\n- b\n", "got ['a', 'b'], expected a mapping with a rules list"),
        ("rule: []\n", "rule: unknown key, expected only 'rules'"),
        ("{}\n", "rules: missing, expected a list of rules"),
        ("rules: {a: 1}\n", "rules: got {'a': 1}, expected a list of rules"),
        ("rules: [\n", "not valid YAML"),
        ("rules:\n  - name: a\n    name: b\n", "not valid YAML (line 3): duplicate key 'name'"),
        ("rules: !!python/object:os.system {}\n", "not valid YAML"),
        ("rules:\n  - ? [a]\n    : 1\n", "not valid YAML (line 2): found unhashable key"),
        ("a: &x {b: 1}\nrules: [{<<: *x, b: 2}]\n", "a: unknown key"),  # merge keys work
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(PolicyError, match=re.escape(f"{path}: {expected}")):
        load_policies([path])


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match=re.escape(f"{missing}: cannot read the file")):
        load_policies([missing])


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"rules: []\n# caf\xe9\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policies([path])


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "rules:\n" + GOOD_RULE)
    second = write(
        tmp_path, "b.yaml", "rules:\n  - {name: x, match: {path: /x}, auth: public}\n" + GOOD_RULE
    )
    expected = f"{second}: rule 2 ('ok'): name: duplicate, already used by rule 1 in {first}"
    with pytest.raises(PolicyError, match=re.escape(expected)):
        load_policies([first, second])


def test_duplicate_names_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "rules:\n" + GOOD_RULE + GOOD_RULE)
    with pytest.raises(PolicyError, match=re.escape(f"{path}: rule 2 ('ok'): name: duplicate")):
        load_policies([path])


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)

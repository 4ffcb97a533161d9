"""The compiled matcher: pattern semantics, precedence, methods, hosts, scale."""

from __future__ import annotations

import random

import pytest

from gateway.policy import Auth, PolicyError, Rule, compile_rules, parse_pattern


def one_rule(pattern: str) -> list[Rule]:
    return [Rule(name="r", path=pattern, auth=Auth.PUBLIC)]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # literals: whole segments, case-sensitive
        ("/api/v3/sessions", "/api/v3/sessions", True),
        ("/api/v3/sessions", "/api/v3/session", False),
        ("/api/v3/sessions", "/API/v3/sessions", False),
        ("/api/v3/sessions", "/api/v3/sessions/x", False),
        ("/api/v3/sessions", "/api/v3", False),
        ("/api", "/apix", False),
        # trailing slashes and repeated slashes are ignored on both sides
        ("/a/b", "/a/b/", True),
        ("/a/b/", "/a/b", True),
        ("/a/b", "//a//b", True),
        ("/", "/", True),
        ("/", "/a", False),
        # `*`: exactly one segment
        ("/users/*/ban", "/users/u1/ban", True),
        ("/users/*/ban", "/users/ban", False),
        ("/users/*/ban", "/users/a/b/ban", False),
        ("/users/*", "/users/", False),
        ("/users/*", "/users/x/", True),
        ("/*", "/", False),
        # `**`: zero or more segments, anywhere
        ("/api/**", "/api", True),
        ("/api/**", "/api/", True),
        ("/api/**", "/api/a", True),
        ("/api/**", "/api/a/b/c", True),
        ("/api/**", "/apiv2/a", False),
        ("/api/**", "/", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/api/**/comments", "/api/comments", True),
        ("/api/**/comments", "/api/v3/posts/p1/comments", True),
        ("/api/**/comments", "/api/v3/posts/p1/comments/c1", False),
        ("/api/**/comments/*", "/api/x/comments/c1", True),
        ("/**/x/**", "/a/x/b", True),
        ("/**/x/**", "/x", True),
        ("/**/x/**", "/a/b", False),
        ("/a/**/**/b", "/a/b", True),
        ("/a/**/*/b", "/a/b", False),
        ("/a/**/*/b", "/a/z/b", True),
        ("/a/*/**", "/a", False),
        ("/a/*/**", "/a/z", True),
        # literals compare percent-decoded, so an escape cannot dodge a rule
        ("/api/x", "/ap%69/x", True),
        ("/users/a!b", "/users/a%21b", True),
        ("/users/a%21b", "/users/a!b", True),
        ("/users/%2A", "/users/*", True),
        ("/caf%C3%A9", "/caf%c3%a9", True),
    ],
)
def test_pattern_table(pattern: str, path: str, matches: bool) -> None:
    policies = compile_rules(one_rule(pattern))
    assert (policies.match("GET", None, path) is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/api/**", ("api", "**")),
        ("/a/*/b/", ("a", "*", "b")),
        ("/", ()),
        ("/ap%69", ("api",)),
    ],
)
def test_parse_pattern(pattern: str, expected: tuple[str, ...]) -> None:
    assert parse_pattern(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("api/**", "starting with /"),
        ("", "starting with /"),
        ("/foo*", "whole segment"),
        ("/*foo", "whole segment"),
        ("/***", "whole segment"),
        ("/a/b*c/d", "whole segment"),
        ("/a/../b", "plain segment"),
        ("/a/%2e%2e", "plain segment"),
        ("/a/%2F", "plain segment"),
        ("/a b", "path characters"),
        ("/a?b", "path characters"),
        ("/a%zz", "path characters"),
    ],
)
def test_parse_pattern_refuses(pattern: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_pattern(pattern)


def test_compile_rules_reports_bad_pattern() -> None:
    with pytest.raises(PolicyError, match=r"x\.yaml: rule 'bad': match\.path: got 'nope'"):
        compile_rules([Rule(name="bad", path="nope", auth=Auth.PUBLIC, source="x.yaml")])


def test_compile_rules_refuses_duplicate_names() -> None:
    rules = [
        Rule(name="same", path="/a", auth=Auth.PUBLIC, source="a.yaml", index=0),
        Rule(name="same", path="/b", auth=Auth.PUBLIC, source="b.yaml", index=1),
    ]
    with pytest.raises(PolicyError, match=r"b\.yaml: rule 'same': name: duplicate.*a\.yaml"):
        compile_rules(rules)


def test_first_match_wins_by_index() -> None:
    wide = Rule(name="wide", path="/api/**", auth=Auth.ANY_TOKEN, index=1)
    narrow = Rule(name="narrow", path="/api/v3/sessions", auth=Auth.PUBLIC, index=2)
    star = Rule(name="star", path="/api/*/sessions", auth=Auth.DENY, index=0)
    policies = compile_rules([wide, narrow, star])
    assert [r.name for r in policies.rules] == ["star", "wide", "narrow"]
    assert policies.match("GET", None, "/api/v3/sessions") is star
    assert policies.match("GET", None, "/api/v3/other") is wide
    assert compile_rules([narrow, wide]).match("GET", None, "/api/v3/sessions") is wide


def test_no_match_is_none() -> None:
    policies = compile_rules(one_rule("/api/**"))
    assert policies.match("GET", None, "/other") is None
    assert compile_rules([]).match("GET", None, "/") is None


def test_methods_filter_then_fall_through() -> None:
    rules = [
        Rule(name="read", path="/x", methods=frozenset({"GET"}), auth=Auth.PUBLIC, index=0),
        Rule(
            name="write",
            path="/x",
            methods=frozenset({"post", "Put"}),
            auth=Auth.ADMIN_TOKEN,
            index=1,
        ),
        Rule(name="rest", path="/**", auth=Auth.DENY, index=2),
    ]
    policies = compile_rules(rules)
    assert policies.rules[1].methods == frozenset({"POST", "PUT"})
    assert _name(policies.match("GET", None, "/x")) == "read"
    assert _name(policies.match("get", None, "/x")) == "read"
    assert _name(policies.match("PUT", None, "/x")) == "write"
    assert _name(policies.match("post", None, "/x")) == "write"
    assert _name(policies.match("DELETE", None, "/x")) == "rest"
    assert _name(policies.match("HEAD", None, "/x")) == "read"  # HEAD is matched as GET


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.eu.amity.co", "eu"),
        ("API.EU.AMITY.CO", "eu"),
        ("api.eu.amity.co:8443", "eu"),
        ("api.eu.amity.co.", "eu"),
        ("[::1]:8443", "local6"),
        ("::1", "local6"),
        ("api.sg.amity.co", "any"),
        ("api.eu.amity.co.evil.com", "any"),
        (None, "any"),
        ("", "any"),
    ],
)
def test_hosts(host: str | None, expected: str) -> None:
    rules = [
        Rule(
            name="eu",
            path="/api/**",
            hosts=frozenset({"Api.EU.amity.co:443"}),
            auth=Auth.DENY,
            index=0,
        ),
        Rule(name="local6", path="/api/**", hosts=frozenset({"[::1]"}), auth=Auth.PUBLIC, index=1),
        Rule(name="any", path="/api/**", auth=Auth.ANY_TOKEN, index=2),
    ]
    assert _name(compile_rules(rules).match("GET", host, "/api/x")) == expected


def test_lower_index_wins_across_trie_branches() -> None:
    # Candidates come from different trie nodes (literal, `*`, `**`): the lowest index wins.
    rules = [
        Rule(name="glob", path="/a/**", methods=frozenset({"POST"}), auth=Auth.DENY, index=0),
        Rule(name="star", path="/a/*", auth=Auth.PUBLIC, index=1),
        Rule(name="lit", path="/a/b", auth=Auth.ANY_TOKEN, index=2),
    ]
    policies = compile_rules(rules)
    assert _name(policies.match("POST", None, "/a/b")) == "glob"
    assert _name(policies.match("GET", None, "/a/b")) == "star"
    assert _name(policies.match("GET", None, "/a")) is None


def test_thousand_rules() -> None:
    rules = [
        Rule(
            name=f"r{i}",
            path=f"/api/v{i % 5}/res{i}/*/items",
            auth=Auth.PUBLIC,
            methods=frozenset({"GET"}) if i % 2 else None,
            index=i,
        )
        for i in range(1000)
    ]
    rules.append(Rule(name="deep", path="/api/**/items", auth=Auth.ADMIN_TOKEN, index=1000))
    rules.append(Rule(name="tail", path="/api/**", auth=Auth.ANY_TOKEN, index=1001))
    policies = compile_rules(rules)
    for i in range(1000):
        path = f"/api/v{i % 5}/res{i}/x{i}/items"
        assert _name(policies.match("GET", None, path)) == f"r{i}"
        assert _name(policies.match("POST", None, path)) == ("deep" if i % 2 else f"r{i}")
        assert _name(policies.match("GET", None, f"/api/v{(i + 1) % 5}/res{i}/x/items")) == "deep"
    assert _name(policies.match("GET", None, "/api/v0/res0/x")) == "tail"
    assert policies.match("GET", None, "/nope") is None


def _name(rule: Rule | None) -> str | None:
    return None if rule is None else rule.name


def _reference_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Obvious recursive definition of the pattern language, to check the trie against."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_reference_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return (head == "*" or head == path[0]) and _reference_match(rest, path[1:])


def test_matches_reference_on_random_rules() -> None:
    rng = random.Random(20241123)  # fixed seed: reproducible failures
    alphabet = ["a", "b", "c"]
    for _ in range(40):
        patterns = {
            tuple(rng.choice([*alphabet, "*", "**"]) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 12))
        }
        rules = [
            Rule(
                name=f"r{i}",
                path="/" + "/".join(p),
                auth=Auth.PUBLIC,
                index=i,
                methods=rng.choice([None, frozenset({"GET"}), frozenset({"POST"})]),
            )
            for i, p in enumerate(sorted(patterns))
        ]
        policies = compile_rules(rules)
        for _ in range(60):
            path = tuple(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
            method = rng.choice(["GET", "POST"])
            expected = next(
                (
                    r
                    for r in rules
                    if _reference_match(parse_pattern(r.path), path)
                    and (r.methods is None or method in r.methods)
                ),
                None,
            )
            assert policies.match(method, None, "/" + "/".join(path)) is expected, (
                [r.path for r in rules],
                path,
                method,
            )

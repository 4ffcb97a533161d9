"""The route table: built-in endpoints and policy rules, matched once per request.

One lookup on the normalised request (method with HEAD as GET, host, path, query
names) answers both questions the request path has: which rule decides the
credential, and who answers (a built-in endpoint, or the upstream). Nothing else
routes, so no spelling of a request can be checked by one router and served by another:
a path that normalises to a built-in endpoint is served by it or refused (405 for a
method it does not serve), never forwarded.

Built-in endpoints are decided only by rules written for their own path (or `deny`
rules): see `_rules_for`. Generic in the handler type so that this module knows
nothing of aiohttp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.policy.matcher import PathTrie, PolicySet, parse_pattern, request_method
from gateway.policy.model import Auth, Rule

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[H]):
    """A built-in endpoint: `path` may hold `{name}` segments, read back as params."""

    path: str
    methods: frozenset[str]
    handler: H
    name: str = ""
    # The endpoint's own form of the gate's refusal (the OAuth endpoints answer with the
    # error shapes of their RFCs); None: the contract's error as it is.
    refusal: Callable[[Exception], Exception] | None = None

    @property
    def pattern(self) -> str:
        """The path as a policy pattern: each `{name}` is one segment, `*`."""
        return "/".join("*" if _param(s) else s for s in self.path.split("/"))


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """Where a request goes: the rule deciding its credential and, for built-in
    endpoints, the handler and the path's `{name}` values. `endpoint` None: upstream."""

    rule: Rule
    endpoint: Endpoint[H] | None = None
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoRoute:
    """The refusal when nothing may answer: 404, or 405 with the methods that exist."""

    status: int
    allow: tuple[str, ...] = ()


NOT_FOUND = NoRoute(404)


class RouteTable(Generic[H]):
    """Compiled once from the policy rules and the built-in endpoints together."""

    def __init__(self, policies: PolicySet, endpoints: Sequence[Endpoint[H]],
                 *, case_sensitive: bool = False) -> None:
        self.policies = policies
        self.endpoints = tuple(endpoints)
        self._trie = PathTrie([(e.pattern, f"endpoint {e.path}") for e in self.endpoints])
        self._case_sensitive = case_sensitive
        self._endpoint_rules = tuple(_rules_for(policies, e) for e in self.endpoints)

    def match(self, method: str, host: str | None, path: str,
              query: str = "") -> Route[H] | NoRoute:
        """The route of a normalised request (`normalize_path` output, raw query)."""
        route = self._match(request_method(method), host, path, query)
        if self._case_sensitive or path.islower() or not any(c.isupper() for c in path):
            return route
        # `/API/v3/Audit-Logs`: upstreams that ignore case would serve what a rule for the
        # lower-case path guards. Refuse a spelling whose case decides which route it gets.
        if _same(route, self._match(request_method(method), host, path.lower(), query)):
            return route
        return NoRoute(400)

    def _match(self, method: str, host: str | None, path: str, query: str) -> Route[H] | NoRoute:
        positions = self._trie.matches(path)
        if not positions:
            rule = self.policies.match(method, host, path, query)
            return NOT_FOUND if rule is None else Route(rule)
        position = next((p for p in positions if method in self.endpoints[p].methods), None)
        if position is None:
            return NoRoute(405, _allow([self.endpoints[p] for p in positions]))
        endpoint = self.endpoints[position]
        rule = self._endpoint_rules[position].match(method, host, path, query)
        if rule is None:
            return NOT_FOUND
        return Route(rule, endpoint, _params(endpoint.path, path))


def _same(a: Route[H] | NoRoute, b: Route[H] | NoRoute) -> bool:
    if isinstance(a, NoRoute) or isinstance(b, NoRoute):
        return a == b
    return a.rule is b.rule and a.endpoint is b.endpoint


def _allow(endpoints: Sequence[Endpoint[H]]) -> tuple[str, ...]:
    methods = {m for e in endpoints for m in e.methods}
    if "GET" in methods:
        methods.add("HEAD")
    return tuple(sorted(methods))


def _param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _params(pattern: str, path: str) -> dict[str, str]:
    names = [s for s in pattern.split("/") if s]
    values = [s for s in path.split("/") if s]
    return {n[1:-1]: v for n, v in zip(names, values, strict=False) if _param(n)}


def _rules_for(policies: PolicySet, endpoint: Endpoint[H]) -> PolicySet:
    """The rules that may decide a built-in endpoint: those written for its own path, and
    `deny` rules. A wildcard such as `/api/** any_token` never grants a built-in
    endpoint (it would hand, say, server-key generation to any end user); an endpoint
    no rule names answers 404."""
    wanted = parse_pattern(endpoint.pattern)
    return PolicySet(tuple(
        rule for rule in policies.rules
        if rule.auth is Auth.DENY or parse_pattern(rule.path) == wanted
    ))

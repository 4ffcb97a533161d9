"""Path patterns and the compiled matcher: a segment trie walked once per request.

Each trie node has literal children (a dict), an optional `*` child (any one segment)
and an optional `**` child, which matches zero segments (it is part of its parent's
closure) and then any number more (it loops on itself). A request walks all live nodes
segment by segment, like an NFA, so the cost grows with the path length and the
number of wildcards that can apply, not with the number of rules. The rules ending in
the reached nodes are the candidates; the one with the lowest index whose methods and
hosts also fit wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from gateway.policy.model import PolicyError, Rule
from gateway.policy.paths import normalize_host

STAR = "*"
GLOBSTAR = "**"

# A literal segment: RFC 3986 pchar without "*" (reserved for wildcards; write %2A).
_LITERAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=:@]|%[0-9A-Fa-f]{2})+")


def parse_pattern(pattern: str) -> tuple[str, ...]:
    """`/api/*/x/**` -> `('api', '*', 'x', '**')`, literals percent-decoded.

    Empty segments are ignored, so `/a/b/` is the same pattern as `/a/b` (requests get
    the same treatment). Raises ValueError whose message says what was expected.
    """
    if not pattern.startswith("/"):
        raise ValueError("a path starting with /")
    segments: list[str] = []
    for segment in pattern.split("/"):
        if not segment:
            continue
        if segment in (STAR, GLOBSTAR):
            segments.append(segment)
        elif "*" in segment:
            raise ValueError(f"'*' or '**' as a whole segment (not {segment!r})")
        elif not _LITERAL.fullmatch(segment):
            raise ValueError("path characters: letters, digits, -._~!$&'()+,;=:@ or %XX")
        else:
            literal = _decode(segment) if "%" in segment else segment
            if literal in (".", "..") or any(c in literal for c in "/\\\0"):
                raise ValueError(f"a plain segment (not {segment!r})")
            segments.append(literal)
    return tuple(segments)


def _decode(segment: str) -> str:
    # Compare segments decoded, so `a%21b` and `a!b` are one literal, as upstreams see it.
    return unquote(segment, errors="surrogateescape")


@dataclass(eq=False, slots=True)
class _Node:
    """Trie node; built by `_build` and never changed afterwards. Hashed by identity."""

    literal: dict[str, _Node] = field(default_factory=dict)
    star: _Node | None = None
    globstar: _Node | None = None
    loops: bool = False  # reached through `**`: any further segment stays here
    ends: list[int] = field(default_factory=list)  # positions of rules ending here, ascending
    # Filled in by `_close`, so that one request step is one dict lookup per live node:
    closure: tuple[_Node, ...] = ()  # itself plus what `**` children reach with no segment
    any_step: tuple[_Node, ...] = ()  # reached on any segment: via `*`, or staying in `**`
    step: dict[str, tuple[_Node, ...]] = field(default_factory=dict)  # literal -> reached


def _build(patterns: Sequence[tuple[str, str]]) -> _Node:
    """A trie of (pattern, where) pairs; `where` names the pattern in error messages."""
    root = _Node()
    for position, (pattern, where) in enumerate(patterns):
        try:
            segments = parse_pattern(pattern)
        except ValueError as exc:
            raise PolicyError(f"{where}: match.path: got {pattern!r}, expected {exc}") from None
        node = root
        for segment in segments:
            node = _child(node, segment)
        node.ends.append(position)
    _close(root)
    return root


def _child(node: _Node, segment: str) -> _Node:
    if segment == STAR:
        if node.star is None:
            node.star = _Node()
        return node.star
    if segment == GLOBSTAR:
        if node.globstar is None:
            node.globstar = _Node(loops=True)
        return node.globstar
    return node.literal.setdefault(segment, _Node())


def _close(root: _Node) -> None:
    """Fill in `closure` and `any_step`, children before parents (a node's closure
    includes its `**` child's)."""
    stack: list[tuple[_Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            extra = node.globstar.closure if node.globstar is not None else ()
            node.closure = (node, *extra)
            star = node.star.closure if node.star is not None else ()
            node.any_step = _unique((*star, *(node.closure if node.loops else ())))
            node.step = {
                segment: _unique((*child.closure, *node.any_step))
                for segment, child in node.literal.items()
            }
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in node.literal.values())
        stack.extend((child, False) for child in (node.star, node.globstar) if child is not None)


class PathTrie:
    """Path patterns compiled once; `states` walks a normalised path through them."""

    __slots__ = ("_root",)

    def __init__(self, patterns: Sequence[tuple[str, str]]) -> None:
        self._root = _build(patterns)

    def states(self, path: str) -> tuple[_Node, ...]:
        """The trie nodes `path` reaches (empty: no pattern can match)."""
        states = self._root.closure
        for raw in path.split("/"):
            if not raw:
                continue
            segment = _decode(raw) if "%" in raw else raw
            if len(states) == 1:  # the common case, kept cheap
                node = states[0]
                states = node.step.get(segment, node.any_step)
            else:
                reached: list[_Node] = []
                for node in states:
                    reached.extend(node.step.get(segment, node.any_step))
                # Several `**` can reach one node: dedupe so the live set stays small.
                states = _unique(reached)
            if not states:
                return ()
        return states

    def matches(self, path: str) -> list[int]:
        """Positions of every pattern matching `path`, ascending."""
        return sorted({position for node in self.states(path) for position in node.ends})


def request_method(method: str) -> str:
    """The method rules and endpoints are matched with: HEAD is GET without a body."""
    upper = method.upper()
    return "GET" if upper == "HEAD" else upper


@dataclass(frozen=True)
class PolicySet:
    """Rules in precedence order (first wins), compiled once; `match` does no I/O."""

    rules: tuple[Rule, ...]
    _trie: PathTrie = field(init=False, repr=False, compare=False)
    _uses_hosts: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_unique_names(self.rules)
        patterns = [(r.path, f"{r.source}: rule {r.name!r}") for r in self.rules]
        object.__setattr__(self, "_trie", PathTrie(patterns))
        object.__setattr__(self, "_uses_hosts", any(r.hosts for r in self.rules))

    def match(self, method: str, host: str | None, path: str, query: str = "") -> Rule | None:
        """The first rule matching the request, or None (the caller answers 404).

        `path` is the output of `normalize_path` (no query string); `host` may carry a
        port and any case; `method` any case (HEAD matches as GET); `query` the raw query
        string, read only by rules with `match.query`.
        """
        states = self._trie.states(path)
        if not states:
            return None
        return self._pick(states, request_method(method), host, query)

    def _pick(
        self, states: tuple[_Node, ...], method: str, host: str | None, query: str
    ) -> Rule | None:
        wanted_host = normalize_host(host) if host is not None and self._uses_hosts else None
        present: frozenset[str] | None = None
        best = len(self.rules)
        for node in states:
            for position in node.ends:
                if position >= best:
                    break
                rule = self.rules[position]
                if rule.methods is not None and method not in rule.methods:
                    continue
                if rule.hosts is not None and wanted_host not in rule.hosts:
                    continue
                if rule.query:
                    if present is None:
                        present = query_names(query)
                    if not rule.query <= present:
                        continue
                best = position
                break
        return self.rules[best] if best < len(self.rules) else None


def query_names(query: str) -> frozenset[str]:
    """The parameter names present in a raw query string, decoded (`a=1&b` -> {a, b})."""
    return frozenset(
        unquote(item.partition("=")[0].replace("+", " "))
        for item in query.split("&")
        if item.partition("=")[0]
    )


def _unique(nodes: Sequence[_Node]) -> tuple[_Node, ...]:
    return tuple(dict.fromkeys(nodes))


def _check_unique_names(rules: Sequence[Rule]) -> None:
    seen: dict[str, Rule] = {}
    for rule in rules:
        earlier = seen.get(rule.name)
        if earlier is not None:
            raise PolicyError(
                f"{rule.source}: rule {rule.name!r}: name: duplicate, "
                f"already used in {earlier.source}"
            )
        seen[rule.name] = rule


def compile_rules(rules: Sequence[Rule]) -> PolicySet:
    """Compile rules into a PolicySet, ordered by `Rule.index` (stable for equal ones)."""
    return PolicySet(tuple(sorted(rules, key=lambda rule: rule.index)))

"""Policy matching throughput: the compiled trie vs a linear scan of regexes.

Run: .venv/bin/python bench/policy_match.py   (about 10 s)

For 10, 100 and 1000 rules (literal, `*` and `**` patterns, some method-restricted,
ending with a catch-all `/api/**`) it matches the same mixed sample of requests (hits
early, late and on the catch-all, plus misses) with both, checks they agree, and
prints matches per second.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

from gateway.policy import Auth, PolicySet, Rule, compile_rules, parse_pattern

SECONDS_PER_CASE = 1.0
Request = tuple[str, str | None, str]


def make_rules(count: int) -> list[Rule]:
    rules: list[Rule] = []
    for i in range(count - 1):
        kind = i % 4
        if kind == 0:
            path, methods = f"/api/v3/resource{i}", frozenset({"GET", "POST"})
        elif kind == 1:
            path, methods = f"/api/v3/resource{i}/*/items", None
        elif kind == 2:
            path, methods = f"/api/v{i}/**/comments", frozenset({"GET"})
        else:
            path, methods = f"/svc{i}/*/x/**", None
        rules.append(Rule(name=f"r{i}", path=path, methods=methods, auth=Auth.PUBLIC, index=i))
    rules.append(Rule(name="api", path="/api/**", auth=Auth.ANY_TOKEN, index=count - 1))
    return rules


def make_requests(count: int, rng: random.Random) -> list[Request]:
    requests: list[Request] = []
    for _ in range(2000):
        i = rng.randrange(count)
        kind = rng.randrange(6)
        if kind == 0:
            path = f"/api/v3/resource{i}"
        elif kind == 1:
            path = f"/api/v3/resource{i}/abc{i}/items"
        elif kind == 2:
            path = f"/api/v{i}/posts/p{i}/comments"
        elif kind == 3:
            path = f"/svc{i}/y/x/deep/er/path"
        elif kind == 4:
            path = f"/api/v3/channels/c{i}/messages"  # catch-all
        else:
            path = f"/static/file{i}.js"  # no rule
        requests.append((rng.choice(["GET", "POST", "DELETE"]), "api.sg.amity.co", path))
    return requests


def regex_for(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for segment in parse_pattern(pattern):
        if segment == "**":
            parts.append("(?:/[^/]+)*")
        elif segment == "*":
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
    return re.compile("".join(parts))


def linear_matcher(rules: list[Rule]) -> Callable[[str, str | None, str], Rule | None]:
    compiled = [(regex_for(rule.path), rule) for rule in rules]

    def match(method: str, host: str | None, path: str) -> Rule | None:
        stripped = path.rstrip("/")
        for regex, rule in compiled:
            if rule.methods is not None and method not in rule.methods:
                continue
            if regex.fullmatch(stripped):
                return rule
        return None

    return match


def rate(match: Callable[[str, str | None, str], Rule | None], requests: list[Request]) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + SECONDS_PER_CASE
    while time.perf_counter() < deadline:
        for method, host, path in requests:
            match(method, host, path)
        done += len(requests)
    return done / (time.perf_counter() - start)


def main() -> None:
    rng = random.Random(7)
    print(f"{'rules':>6} {'trie matches/s':>16} {'linear regex matches/s':>24} {'speed-up':>9}")
    for count in (10, 100, 1000):
        rules = make_rules(count)
        policies: PolicySet = compile_rules(rules)
        linear = linear_matcher(rules)
        requests = make_requests(count, rng)
        for request in requests:
            assert policies.match(*request) is linear(*request), request
        trie_rate = rate(policies.match, requests)
        linear_rate = rate(linear, requests)
        print(
            f"{count:>6} {trie_rate:>16,.0f} {linear_rate:>24,.0f} {trie_rate / linear_rate:>8.1f}x"
        )


if __name__ == "__main__":
    main()

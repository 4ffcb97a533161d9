"""Policy files (YAML) -> validated Rules -> a compiled PolicySet.

Every problem is a PolicyError naming the file, the rule (its 1-based position in that
file and its name when known) and the field, e.g.
`policies/x.yaml: rule 3 ('api'): match.path: got 'api/**', expected a path starting with /`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from gateway.policy.matcher import PolicySet, compile_rules, parse_pattern
from gateway.policy.model import (
    CONSOLE_ROLES,
    HTTP_METHODS,
    ROLES,
    USER_ROLE,
    Auth,
    PolicyError,
    Rule,
)
from gateway.policy.paths import normalize_host

_RULE_KEYS = ("name", "match", "auth", "roles", "exclude_roles", "superseded", "mtls", "stale")
_MATCH_KEYS = ("path", "methods", "hosts", "query")
_QUERY_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
# Credentials with no role: a role condition on them can never hold.
_NO_ROLES = (Auth.PUBLIC, Auth.DENY, Auth.MQTT_CONNECT, Auth.SERVER_KEY)
# Credentials of console users only: `roles: [user]` could never admit anyone.
_ADMIN_ONLY = (Auth.ADMIN_TOKEN, Auth.SERVER_KEY_OR_ADMIN)
_HOSTNAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_AUTH_NAMES = tuple(a.value for a in Auth)
_AUTH_VALUES = ", ".join(_AUTH_NAMES)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: a second `auth:` would silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *defaults` may be overridden by explicit keys
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_policies(paths: Sequence[str | os.PathLike[str]]) -> PolicySet:
    """Read the files in order; rules keep file order; the first match wins overall."""
    rules: list[Rule] = []
    names: dict[str, str] = {}
    for path in paths:
        source = os.fspath(path)
        for position, item in enumerate(_rule_items(source), start=1):
            rule = _parse_rule(_Where(source, position), item, index=len(rules))
            if rule.name in names:
                raise _Where(source, position, rule.name).error(
                    "name", f"duplicate, already used by {names[rule.name]}"
                )
            names[rule.name] = f"rule {position} in {source}"
            rules.append(rule)
    return compile_rules(rules)


@dataclass(frozen=True)
class _Where:
    source: str
    position: int
    name: str | None = None

    def error(self, field: str, problem: str) -> PolicyError:
        rule = f"rule {self.position}" + (f" ({self.name!r})" if self.name else "")
        return PolicyError(f"{self.source}: {rule}: {field}: {problem}")


def _got(value: object, expected: str) -> str:
    shown = "null" if value is None else repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"got {shown}, expected {expected}"


def _rule_items(source: str) -> list[object]:
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{source}: not UTF-8 text") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: {_got(document, 'a mapping with a rules list')}")
    for key in document:
        if key != "rules":
            raise PolicyError(f"{source}: {key}: unknown key, expected only 'rules'")
    if "rules" not in document:
        raise PolicyError(f"{source}: rules: missing, expected a list of rules")
    items = document["rules"]
    if not isinstance(items, list):
        raise PolicyError(f"{source}: rules: {_got(items, 'a list of rules')}")
    return items


def _parse_rule(where: _Where, item: object, index: int) -> Rule:
    if not isinstance(item, dict):
        raise PolicyError(
            f"{where.source}: rule {where.position}: {_got(item, 'a mapping (name, match, auth)')}"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error("name", _got(name, "a non-empty string"))
    where = _Where(where.source, where.position, name)
    _check_keys(where, "", item, _RULE_KEYS)
    match = item.get("match")
    if not isinstance(match, dict):
        raise where.error("match", _got(match, "a mapping with at least path"))
    _check_keys(where, "match.", match, _MATCH_KEYS)
    auth = _auth(where, item)
    return Rule(
        name=name,
        path=_path(where, match.get("path")),
        methods=_methods(where, match),
        hosts=_hosts(where, match),
        query=_query(where, match),
        auth=auth,
        roles=_roles(where, item, auth),
        exclude_roles=_exclude_roles(where, item, auth),
        allow_superseded=_superseded(where, item),
        mtls=_mtls(where, item) is not False,
        mtls_credentials=ADMIN_CREDENTIALS if _mtls(where, item) == "admin" else None,
        serve_stale=_stale(where, item),
        source=where.source,
        index=index,
    )


def _check_keys(
    where: _Where, prefix: str, mapping: Mapping[object, object], allowed: tuple[str, ...]
) -> None:
    for key in mapping:
        if key not in allowed:
            expected = ", ".join(allowed)
            raise where.error(f"{prefix}{key}", f"unknown key, expected one of {expected}")


def _path(where: _Where, value: object) -> str:
    if not isinstance(value, str):
        raise where.error("match.path", _got(value, "a path pattern such as /api/**"))
    try:
        parse_pattern(value)
    except ValueError as exc:
        raise where.error("match.path", _got(value, str(exc))) from None
    return value


def _string_list(where: _Where, field: str, value: object, expected: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise where.error(field, _got(value, f"a non-empty list of {expected} (omit for any)"))
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise where.error(f"{field}[{i}]", _got(entry, expected))
    return value


def _methods(where: _Where, match: Mapping[str, object]) -> frozenset[str] | None:
    if "methods" not in match:
        return None
    entries = _string_list(where, "match.methods", match["methods"], "HTTP methods")
    for i, entry in enumerate(entries):
        if entry.upper() not in HTTP_METHODS:
            expected = f"one of {', '.join(HTTP_METHODS)}"
            raise where.error(f"match.methods[{i}]", _got(entry, expected))
    methods = frozenset(entry.upper() for entry in entries)
    if "HEAD" in methods and "GET" not in methods:
        # HEAD is matched as GET everywhere: a HEAD-only rule would silently cover GET.
        raise where.error("match.methods", _got(entries, "GET with HEAD (HEAD follows GET)"))
    return methods


def _hosts(where: _Where, match: Mapping[str, object]) -> frozenset[str] | None:
    if "hosts" not in match:
        return None
    entries = _string_list(where, "match.hosts", match["hosts"], "host names")
    hosts: set[str] = set()
    for i, entry in enumerate(entries):
        host = normalize_host(entry)
        if not _is_host(host):
            raise where.error(f"match.hosts[{i}]", _got(entry, "a host name or IP address"))
        hosts.add(host)
    return frozenset(hosts)


def _is_host(host: str) -> bool:
    if _HOSTNAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _auth(where: _Where, item: Mapping[str, object]) -> Auth:
    value = item.get("auth")
    if "auth" not in item:
        raise where.error("auth", f"missing, expected one of {_AUTH_VALUES}")
    if not isinstance(value, str) or value not in _AUTH_NAMES:
        raise where.error("auth", _got(value, f"one of {_AUTH_VALUES}"))
    return Auth(value)


def _roles(where: _Where, item: Mapping[str, object], auth: Auth) -> tuple[str, ...]:
    value = item.get("roles", [])
    if not isinstance(value, list):
        raise where.error("roles", _got(value, f"a list of roles ({', '.join(ROLES)})"))
    roles: list[str] = []
    for i, entry in enumerate(value):
        if entry not in ROLES:
            raise where.error(f"roles[{i}]", _got(entry, f"one of {', '.join(ROLES)}"))
        if entry not in roles:
            roles.append(entry)
    # Refuse combinations that can never admit anyone: they are always a mistake.
    if roles and auth in _NO_ROLES:
        raise where.error("roles", _got(value, f"no roles with auth {auth.value} (no token)"))
    if auth in _ADMIN_ONLY and USER_ROLE in roles:
        raise where.error("roles", _got(value, "console roles with auth admin_token"))
    if auth is Auth.ACCESS_TOKEN and any(r in CONSOLE_ROLES for r in roles):
        raise where.error("roles", _got(value, "only user with auth access_token"))
    return tuple(roles)


def _exclude_roles(where: _Where, item: Mapping[str, object], auth: Auth) -> tuple[str, ...]:
    value = item.get("exclude_roles", [])
    if not isinstance(value, list) or not all(entry in ROLES for entry in value):
        raise where.error("exclude_roles", _got(value, f"a list of roles ({', '.join(ROLES)})"))
    if value and auth in _NO_ROLES:
        raise where.error("exclude_roles", _got(value, f"no roles with auth {auth.value}"))
    return tuple(dict.fromkeys(value))


def _superseded(where: _Where, item: Mapping[str, object]) -> bool:
    value = item.get("superseded", "allow")
    if value not in ("allow", "refuse"):
        raise where.error("superseded", _got(value, "allow or refuse"))
    return value == "allow"


def _query(where: _Where, match: Mapping[str, object]) -> frozenset[str]:
    if "query" not in match:
        return frozenset()
    entries = _string_list(where, "match.query", match["query"], "query parameter names")
    for i, entry in enumerate(entries):
        if not _QUERY_NAME.fullmatch(entry):
            raise where.error(f"match.query[{i}]", _got(entry, "a query parameter name"))
    return frozenset(entries)


def _stale(where: _Where, item: Mapping[str, object]) -> bool:
    value = item.get("stale", "refuse")
    if value not in ("refuse", "serve"):
        raise where.error("stale", _got(value, "refuse or serve"))
    return value == "serve"


# `mtls: admin`: every credential but end users' access tokens (phones carry no client
# certificates); the server key counts on the rules that admit it.
ADMIN_CREDENTIALS = frozenset({"admin_token", "console_session", "server_key"})


def _mtls(where: _Where, item: Mapping[str, object]) -> bool | str:
    value = item.get("mtls", False)
    if not isinstance(value, bool) and value != "admin":
        raise where.error("mtls", _got(value, "true, false or admin"))
    return value

"""Route policies: which credential, roles and client certificate each path needs.

`load_policies` reads the YAML files named in config.yaml once (start-up, SIGHUP) and
returns a compiled `PolicySet`; per request the caller runs `normalize_path` on the raw
path, then `PolicySet.match`, and enforces the returned rule (None -> 404).
"""

from gateway.policy.loader import load_policies
from gateway.policy.matcher import PolicySet, compile_rules, parse_pattern
from gateway.policy.model import (
    CONSOLE_ROLES,
    HTTP_METHODS,
    ROLES,
    USER_ROLE,
    Auth,
    PolicyError,
    Rule,
    role_allows,
)
from gateway.policy.paths import PathOptions, UnsafePath, normalize_host, normalize_path

__all__ = [
    "CONSOLE_ROLES",
    "HTTP_METHODS",
    "ROLES",
    "USER_ROLE",
    "Auth",
    "PathOptions",
    "PolicyError",
    "PolicySet",
    "Rule",
    "UnsafePath",
    "compile_rules",
    "load_policies",
    "normalize_host",
    "normalize_path",
    "parse_pattern",
    "role_allows",
]

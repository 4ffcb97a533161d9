"""docs/API.md against the code: the endpoint index is the route table's built-in
endpoints (both ways) with the rules that decide them, the configuration table names
every key the loader reads with its real default, the policy table every rule key and
auth kind. And the user-facing texts point to docs/API.md, never outside the repository."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from gateway.app import ENDPOINTS
from gateway.cli_help import COMMAND_HELP
from gateway.config import _SECTIONS, load_config
from gateway.policy import load_policies
from gateway.policy.loader import _MATCH_KEYS, _RULE_KEYS
from gateway.policy.model import Auth
from gateway.policy.routes import Route, RouteTable
from gateway.testing.support import REPO

DOC = REPO / "docs" / "API.md"
_CELL = re.compile(r"(?<!\\)\|")  # `v3\|v4` inside a cell is text
_PARAM = re.compile(r"\{[^}/]+\}")


def _section(heading: str) -> str:
    """The text under a `#`-heading of the doc, up to the next heading of any level."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = re.search(r"\n#{1,4} ", text[start:])
    return text[start:start + end.start()] if end else text[start:]


def _rows(section: str) -> list[list[str]]:
    """The body rows of the tables in a section, each a list of stripped cells."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-| ]+\|", line):
            rows.append([cell.strip() for cell in _CELL.split(line)[1:-1]])
    return rows[1:] if rows else rows  # the header row


def _code(cell: str) -> str:
    match = re.match(r"`([^`]+)`", cell)
    assert match, f"expected a `code` cell, got {cell!r}"
    return match.group(1)


def _shape(path: str) -> str:
    """`/api/v3/users/{userId}/ban` and `/api/v3/users/{user_id}/ban` are one path."""
    return _PARAM.sub("{}", path)


def _index() -> dict[tuple[str, str], str]:
    """(method, path shape) -> the first rule named in that row."""
    rows = _rows(_section("### Endpoint index"))
    index: dict[tuple[str, str], str] = {}
    for row in rows:
        method, path = _code(row[0]).split(" ", 1)
        key = (method, _shape(path))
        assert key not in index, f"{method} {path} is listed twice"
        index[key] = _code(row[1])
    return index


def test_the_endpoint_index_is_the_route_tables_built_in_endpoints() -> None:
    served = {(method, _shape(e.path)) for e in ENDPOINTS for method in e.methods}
    listed = set(_index())
    assert served - listed == set(), "built-in endpoints missing from docs/API.md"
    assert listed - served == set(), "docs/API.md lists endpoints the gateway does not serve"


def test_each_endpoint_is_decided_by_the_rule_the_index_names() -> None:
    table = RouteTable(load_policies([REPO / "policies" / "default.yaml"]), ENDPOINTS)
    for (method, shape), rule in _index().items():
        route = table.match(method, None, shape.replace("{}", "x"))
        assert isinstance(route, Route) and route.endpoint is not None, (method, shape)
        assert route.rule.name == rule, f"{method} {shape}: {route.rule.name}, doc says {rule}"


def _config_rows() -> dict[str, str]:
    """`section.key` -> its default cell, for the rows of the sections the loader reads."""
    rows = {}
    for row in _rows(_section("### config.yaml")):
        key = _code(row[0])
        if key.split(".")[0] in _SECTIONS:
            rows[key] = row[1]
    return rows


def test_the_configuration_table_names_every_key() -> None:
    keys = {f"{section}.{item.name}" for section, cls in _SECTIONS.items()
            for item in dataclasses.fields(cls)}
    documented = set(_config_rows())
    assert keys - documented == set(), "config keys missing from docs/API.md"
    assert documented - keys == set(), "docs/API.md names config keys that do not exist"
    names = {_code(row[0]) for row in _rows(_section("### config.yaml"))}
    assert {"regions.default", "regions.<name>.upstreams", "policies"} <= names


def test_the_documented_defaults_are_the_defaults(tmp_path: Path) -> None:
    """A config that sets every key to the doc's default loads to what leaving every key
    out gives."""
    required = {"regions": {"default": "sg", "sg": {"upstreams": ["http://127.0.0.1:9"]}},
                "policies": [str(REPO / "policies" / "default.yaml")]}
    documented: dict[str, dict[str, object]] = {}
    for key, cell in _config_rows().items():
        section, name = key.split(".")
        documented.setdefault(section, {})[name] = yaml.safe_load(_code(cell))
    (tmp_path / "doc.yaml").write_text(yaml.safe_dump({**documented, **required}))
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(required))
    doc = load_config(tmp_path / "doc.yaml", environ={})
    bare = load_config(tmp_path / "bare.yaml", environ={})
    for key in _config_rows():
        section, name = key.split(".")
        assert getattr(getattr(doc, section), name) == getattr(getattr(bare, section), name), key


def test_the_policy_table_names_every_rule_key_and_auth_kind() -> None:
    section = _section("### Policy files")
    documented = {_code(row[0]) for row in _rows(section)}
    keys = {k for k in _RULE_KEYS if k not in ("name", "match", "auth")}
    keys |= {f"match.{k}" for k in _MATCH_KEYS}
    keys |= {f"auth: {a.value}" for a in Auth}
    assert keys - documented == set()
    example = section.split("rules:", 1)[1]
    for key in (*_RULE_KEYS, *_MATCH_KEYS):
        assert f"{key}:" in example, f"the example rule shows no {key}"


USER_FACING = ["README.md", "config.yaml", "policies/default.yaml", "gateway/defaults/config.yaml",
               *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", USER_FACING)
def test_user_facing_texts_never_point_outside_the_repository(path: str) -> None:
    text = (REPO / path).read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/API.md" not in text


def test_the_readme_and_the_help_point_to_docs_api() -> None:
    assert "(docs/API.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/API.md" in COMMAND_HELP[""].description
    assert "docs/API.md" in COMMAND_HELP["init"].description

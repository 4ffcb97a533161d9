"""What the package ships so that an installed gateway runs without a source checkout:
the default policy and an annotated config, written by `gateway init --config-dir`.

The wheel itself is built, installed outside the repository and run by .ci/package_check.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from gateway.config import _SECTIONS, load_config
from gateway.defaults import CONFIG, POLICY, default_file
from gateway.policy import load_policies
from gateway.testing.support import REPO


@pytest.fixture(autouse=True)
def keep_root_logger() -> Iterator[None]:
    """main() replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_shipped_policy_is_the_repositorys() -> None:
    shipped = REPO / "gateway" / "defaults" / POLICY
    assert default_file(POLICY) == (REPO / "policies" / "default.yaml").read_bytes(), (
        f"policies/default.yaml changed: copy it to {shipped.relative_to(REPO)}"
    )


def test_the_shipped_config_sets_every_key_to_its_default(tmp_path: Path) -> None:
    """The annotated example is also the reference of what can be set: every key of every
    section appears, at the value the gateway uses when it is left out."""
    (tmp_path / CONFIG).write_bytes(default_file(CONFIG))
    (tmp_path / "policies").mkdir()
    (tmp_path / POLICY).write_bytes(default_file(POLICY))
    raw = yaml.safe_load(default_file(CONFIG))
    shipped = load_config(tmp_path / CONFIG, environ={})
    bare_raw = {"regions": raw["regions"], "policies": raw["policies"]}
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(bare_raw), encoding="utf-8")
    defaults = load_config(tmp_path / "bare.yaml", environ={})
    for section, cls in _SECTIONS.items():
        names = {item.name for item in dataclasses.fields(cls)}
        assert set(raw[section]) == names, section
        for name in names:
            assert getattr(getattr(shipped, section), name) == getattr(
                getattr(defaults, section), name), f"{section}.{name}"
    assert set(raw) == {*_SECTIONS, "regions", "policies"}
    load_policies(shipped.policies)


def _init(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["init", "--log-level", "warning", *args]) == 0
    answer: dict[str, object] = json.loads(capsys.readouterr().out)
    return answer


def test_init_config_dir_writes_config_and_policy_then_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "etc"
    first = _init(capsys, "--config-dir", str(folder))
    assert first["created"] == ["config", "policy", "ca", "server_certificate", "kek"]
    assert first["config"] == str(folder / CONFIG)
    assert (folder / CONFIG).read_bytes() == default_file(CONFIG)
    assert (folder / POLICY).read_bytes() == default_file(POLICY)
    # Relative paths of the config land in its folder: certificates, keys, the store.
    assert first["ca"] == str(folder / "certs" / "ca.pem")
    assert first["store"] == str(folder / "var" / "gateway.db")

    edited = b"# mine\n" + default_file(CONFIG)
    (folder / CONFIG).write_bytes(edited)
    (folder / POLICY).unlink()
    second = _init(capsys, "--config-dir", str(folder))
    assert second["created"] == ["policy"]  # only what was missing
    assert (folder / CONFIG).read_bytes() == edited


def test_init_config_dir_and_another_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["init", "--config-dir", str(tmp_path), "--config", str(tmp_path / "x.yaml")])
    assert code == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / CONFIG).exists()
    # The same file both ways is no conflict.
    same = _init(capsys, "--config-dir", str(tmp_path), "--config", str(tmp_path / CONFIG))
    assert same["config"] == str(tmp_path / CONFIG)

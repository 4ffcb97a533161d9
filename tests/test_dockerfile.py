"""The Dockerfile, read without a Docker engine (there is none where CI runs): what it
promises holds together with the scripts it runs. docker/install.sh and the entry point
themselves run on every CI run, outside Docker (.ci/package_check.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass

import pytest

from gateway.testing.support import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _stages() -> list[list[Instruction]]:
    """The instructions of each stage (FROM starts one), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def test_a_build_stage_makes_the_wheel_and_a_slim_stage_runs_it() -> None:
    build, runtime = _stages()
    assert _all(build, "FROM")[0].endswith("AS build")
    assert any("pip wheel" in run for run in _all(build, "RUN"))
    assert "slim" in (REPO / "Dockerfile").read_text().split("ARG PYTHON_IMAGE=")[1].split()[0]
    assert any("--from=build" in copy for copy in _all(runtime, "COPY"))


def test_the_runtime_stage_installs_with_the_script_ci_runs() -> None:
    _, runtime = _stages()
    runs = _all(runtime, "RUN")
    assert len(runs) == 1 and "install.sh" in runs[0]
    copied = " ".join(_all(runtime, "COPY"))
    assert "docker/install.sh" in copied and "docker/entrypoint.sh" in copied
    assert _all(runtime, "ENTRYPOINT") == ['["gateway-entrypoint"]']
    assert _all(runtime, "CMD") == ['["serve"]']


def test_every_file_copied_into_the_image_exists_and_is_in_the_build_context() -> None:
    kept = {line.lstrip("!").rstrip("/") for line in
            (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for stage in _stages():
        for copy in _all(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _target = shlex.split(copy)
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.split("/")[0] in kept, f"{source} is left out by .dockerignore"


def test_it_runs_as_the_unprivileged_user_install_sh_creates() -> None:
    _, runtime = _stages()
    (user,) = _all(runtime, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    assert f"GATEWAY_UID:-{uid}" in (REPO / "docker" / "install.sh").read_text()


def test_config_and_state_are_volumes_the_entrypoint_uses() -> None:
    _, runtime = _stages()
    (volume,) = _all(runtime, "VOLUME")
    env = " ".join(_all(runtime, "ENV"))
    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    for variable, folder in (("GATEWAY_CONFIG_DIR", "/etc/gateway"),
                             ("GATEWAY_STATE_DIR", "/var/lib/gateway")):
        assert f'"{folder}"' in volume
        assert f"{variable}={folder}" in env
        assert f"${{{variable}:-{folder}}}" in entrypoint


def test_the_health_check_asks_healthz() -> None:
    _, runtime = _stages()
    (check,) = _all(runtime, "HEALTHCHECK")
    assert "/healthz" in check and "CMD" in check


@pytest.mark.parametrize("script", ["install.sh", "entrypoint.sh"])
def test_the_scripts_are_valid_posix_shell(script: str) -> None:
    subprocess.run(["sh", "-n", str(REPO / "docker" / script)], check=True)

"""`gateway --version`, bare `gateway`, and every command's --help."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Iterator

import pytest

from gateway.build import build_kind
from gateway.cli import build_parser, main
from gateway.cli_help import COMMAND_HELP
from gateway.testing.process import run_cli


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name))


COMMANDS = {" ".join(words): parser for words, parser in _commands(build_parser())}


async def test_version_comes_from_the_package_metadata() -> None:
    """The version, then which build runs (gateway/build.py)."""
    code, out, err = await run_cli("--version")
    assert (code, err) == (0, "")
    assert out == f"gateway {importlib.metadata.version('gateway')} ({build_kind()})\n"


def test_bare_gateway_prints_its_help_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: gateway") and err == ""
    for command in ("init", "serve", "network", "admin", "tokens", "keys"):
        assert f"\n    {command} " in out
    assert "examples:\n  gateway " in out


def test_a_group_without_its_action_prints_the_group_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tokens"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("usage: gateway tokens") and "mint" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_description_an_example_and_option_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    words = command.split()
    assert main([*words, "--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    doc = COMMAND_HELP[command]
    assert doc.description.splitlines()[0] in out
    invocation = " ".join(["gateway", *words])
    assert "\nexamples:\n" in out
    examples = out.split("\nexamples:\n", 1)[1]
    assert any(invocation in line for line in examples.splitlines()), examples
    for action in COMMANDS[command]._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"{invocation}: {action.option_strings or action.dest} has no help"


def test_no_help_text_is_left_over_from_a_command_that_is_gone() -> None:
    assert set(COMMAND_HELP) == set(COMMANDS)

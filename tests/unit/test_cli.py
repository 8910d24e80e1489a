"""The `shinsa` command line: its top-level listing is built without importing the commands."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shinsa.cli import COMMANDS, app, load_command

pytestmark = pytest.mark.unit


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_line_is_the_commands_own_help(name: str) -> None:
    # The listing's copy is what `shinsa --help` shows without importing the command: it must not drift.
    assert COMMANDS[name].short_help == _first_paragraph(load_command(name).help)


def test_the_listing_names_every_command_with_its_line() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name, spec in COMMANDS.items():
        assert any(
            line.split()[1:3] == [name, *spec.short_help.split()[:1]] for line in result.output.splitlines()
        ), name


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["operator", "run", "--help"], "shinsa operator run"),
        (["gate", "--help"], "shinsa gate"),
        (["eval", "run", "--help"], "shinsa eval run"),
        (["promote", "history", "--help"], "shinsa promote history"),
    ],
)
def test_a_command_loaded_on_demand_keeps_its_name_and_options(argv: list[str], usage: str) -> None:
    result = CliRunner().invoke(app, argv, prog_name="shinsa", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Usage: {usage}" in result.output


def test_an_unknown_command_is_an_error_naming_it() -> None:
    result = CliRunner().invoke(app, ["evaluate"], prog_name="shinsa")
    assert result.exit_code == 2
    assert "No such command 'evaluate'" in result.output

"""The README and every command's --help example actually run."""

from __future__ import annotations

import re
import shlex

import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import ROOT, Cli, app_commands

README = (ROOT / "README.md").read_text()
COMMANDS = app_commands()


def _readme_examples() -> list[list[str]]:
    return [shlex.split(line[len("$ jaxdiff ") :]) for line in README.splitlines() if line.startswith("$ jaxdiff ")]


def test_readme_documents_every_command_and_the_two_setup_commands() -> None:
    for command in COMMANDS:
        assert f"`{command}`" in README
    assert "make demo" in README and "make test" in README


@pytest.mark.parametrize("args", _readme_examples(), ids=" ".join)
def test_readme_examples_run(cli: Cli, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    ran = cli(*args)
    assert ran.exit_code == ExitCode.OK, ran.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_help_examples_run(cli: Cli, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    help_text = " ".join(cli(command, "--help").stdout.split())
    example = re.search(r"Example: jaxdiff (.+?)(?: Arguments| Options|$)", help_text)
    assert example, help_text
    ran = cli(*shlex.split(example.group(1)))
    assert ran.exit_code == ExitCode.OK, (example.group(1), ran.stderr)


def test_readme_lists_exactly_the_expression_tables() -> None:
    from jaxdiff_cli.inputs import expressions

    start, end = "<!-- expression tables: python -m jaxdiff_cli.inputs.expressions -->\n", "<!-- end of expression tables -->"
    assert start in README and end in README
    tables = README.split(start, 1)[1].split(end, 1)[0]
    assert tables == expressions.readme_tables(), "run python -m jaxdiff_cli.inputs.expressions"


def test_readme_states_the_threat_model_in_three_lines() -> None:
    section = README.split("## Security\n", 1)[1].split("\n## ", 1)[0].strip()
    lines = section.splitlines()
    assert all(line.startswith("- ") for line in lines), section  # one line per guarantee (and per thing not guaranteed)
    assert "on/off settings" in section.lower() and "printable" in section
    assert "--no-code" in section and "JAXDIFF_NO_CODE=1" in section
    assert "jaxdiff check --no-code" in README  # the CI recipe uses it

"""The README and every command's --help example actually run."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
COMMANDS = ["eval", "jvp", "vjp", "grad", "jacobian", "hessian", "hvp", "devices"]


def _readme_examples() -> list[list[str]]:
    return [shlex.split(line[len("$ jaxdiff ") :]) for line in README.splitlines() if line.startswith("$ jaxdiff ")]


def test_readme_documents_every_command_and_the_two_setup_commands() -> None:
    for command in COMMANDS:
        assert f"`{command}`" in README
    assert "make demo" in README and "make test" in README


@pytest.mark.parametrize("args", _readme_examples(), ids=" ".join)
def test_readme_examples_run(cli: Any, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    ran = cli(*args)
    assert ran.exit_code == 0, ran.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_help_examples_run(cli: Any, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    help_text = " ".join(cli(command, "--help").stdout.split())
    example = re.search(r"Example: jaxdiff (.+?)(?: Arguments| Options|$)", help_text)
    assert example, help_text
    ran = cli(*shlex.split(example.group(1)))
    assert ran.exit_code == 0, (example.group(1), ran.stderr)

"""On/off settings read by one parser (jaxdiff_cli.switches): JAXDIFF_NO_CODE through the CLI, every spelling.

A spelling one reader takes as on and another as off runs a pull request's code where the job meant
to refuse it (``y`` did, under ``pytest --jaxdiff``); tests/test_plugin_edges.py runs the same
spellings through the pytest plugin. An unknown value is an error, never off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jaxdiff_cli.switches import OFF, ON, SwitchError, switch

# The function's module writes a marker when it is imported and when it is called: with no-code on,
# neither may ever happen.
EVIL = """\
import pathlib
pathlib.Path(__file__).with_name("MARKER").write_text("imported")

def f(x):
    pathlib.Path(__file__).with_name("MARKER").write_text("called")
    return x * 2.0
"""
ON_SPELLINGS = [*ON, "TRUE", "True", "YES", "Yes", "ON", "On", "Y", "T", " yes ", "1\n"]
OFF_SPELLINGS = [*OFF, "FALSE", "False", "NO", "OFF", "N", "F", "", "   "]
BAD_SPELLINGS = ["garbage", "2", "-1", "yess", "enable", "oui", "\u0131", "tru e", "1.0", "none", "\x1b[31mon"]


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.py").write_text(EVIL)
    (tmp_path / "spec.yaml").write_text("function: evil.py:f\nprimals: {x: 1.0}\nrun: [eval]\n")
    (tmp_path / "other.yaml").write_text("function: x * 2\nprimals: {x: 1.0}\n")
    return tmp_path / "MARKER"


@pytest.mark.parametrize("value", ON_SPELLINGS, ids=repr)
def test_every_on_spelling_refuses_file_functions(cli: Any, evil: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", value)
    for args in (["eval", "spec.yaml"], ["eval", "-f", "evil.py:f", "-p", "x=1"], ["check", "spec.yaml"], ["run", "spec.yaml"]):
        ran = cli(*args)
        assert ran.exit_code == 4, (args, ran.stderr)
        assert "is a file function and --no-code is on" in ran.stderr + ran.stdout, (args, ran.stderr)
    assert not evil.exists()
    assert cli("eval", "other.yaml").exit_code == 0  # expressions still run


@pytest.mark.parametrize("value", OFF_SPELLINGS, ids=repr)
def test_every_off_spelling_runs_them(cli: Any, evil: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", value)
    ran = cli("eval", "spec.yaml", "--json")
    assert ran.exit_code == 0, ran.stderr
    assert ran.outputs()["value"] == 2.0 and evil.exists()  # the marker works: the "on" tests can fail
    ran = cli("eval", "spec.yaml", "--no-code")  # the flag turns it on whatever the variable says
    assert ran.exit_code == 4 and "--no-code is on" in ran.stderr


@pytest.mark.parametrize("value", BAD_SPELLINGS, ids=repr)
def test_an_unknown_value_is_an_error_never_off(cli: Any, evil: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", value)
    for args in (["eval", "spec.yaml"], ["eval", "other.yaml"], ["eval", "spec.yaml", "--no-code"], ["run", "spec.yaml"]):
        ran = cli(*args)
        assert ran.exit_code == 3, (args, ran.stderr)
        line = ran.stderr.strip()
        assert "\n" not in line and "\x1b" not in line, line
        assert line.startswith("error: JAXDIFF_NO_CODE: ") and "is neither on nor off" in line, line
        assert "on: 1, true, yes, on, y, t; off: 0, false, no, off, n, f" in line, line
    # check of several specs: one error for the run, not one per spec; --json: one document
    ran = cli("check", "spec.yaml", "other.yaml")
    assert ran.exit_code == 3 and ran.stderr.count("JAXDIFF_NO_CODE") == 1, ran.stderr
    ran = cli("check", "spec.yaml", "other.yaml", "--json")
    assert ran.exit_code == 3 and ran.json()["error"]["key"] == "JAXDIFF_NO_CODE", ran.stdout
    assert not evil.exists()


def test_github_actions_is_read_by_the_same_parser(cli: Any, evil: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (evil.parent / "wrong.yaml").write_text("function: x * 2\nprimals: {x: 1.0}\nexpect: {value: 3.0}\n")
    for value, annotated in (("true", True), ("1", True), ("false", False), ("", False)):
        monkeypatch.setenv("GITHUB_ACTIONS", value)
        ran = cli("check", "wrong.yaml")
        assert ran.exit_code == 1, ran.stderr
        assert ("::error " in ran.stdout) is annotated, (value, ran.stdout)
    monkeypatch.setenv("GITHUB_ACTIONS", "yes please")
    ran = cli("check", "wrong.yaml")
    assert ran.exit_code == 3 and "GITHUB_ACTIONS: 'yes please' is neither on nor off" in ran.stderr, ran.stderr
    assert cli("check", "wrong.yaml", "--output-format", "text").exit_code == 1  # chosen: the variable is not read


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("holomorphic: y", "holomorphic"),
        ("holomorphic: t", "holomorphic"),
        ("has_aux: 'yes'", "has_aux"),
        ("sparse: 'off'", "sparse"),
        ("sparse: 0", "sparse"),
        ("plot: {terminal: 'true'}", "plot.terminal"),
    ],
)
def test_a_spec_boolean_is_a_yaml_boolean(cli: Any, tmp_path: Path, text: str, key: str) -> None:
    """A spec is typed data: true/false (YAML's yes/no/on/off too), and nothing else read as either."""
    (tmp_path / "s.yaml").write_text(f"function: x * 2\nprimals: {{x: 1.0}}\n{text}\n")
    for extra in ([], ["--holomorphic"] if key == "holomorphic" else ["--has-aux"] if key == "has_aux" else []):
        ran = cli("jacobian", str(tmp_path / "s.yaml"), *extra)
        assert ran.exit_code == 3 and f"s.yaml: {key}: true or false" in ran.stderr, (extra, ran.stderr)


def test_the_parser_itself() -> None:
    assert switch(True, "X") is True and switch(False, "X", default=True) is False  # a TOML boolean
    assert switch(None, "X") is False and switch(" ", "X", default=True) is True
    with pytest.raises(SwitchError) as raised:
        switch("x" * 1000, "JAXDIFF_NO_CODE")
    assert len(raised.value.render()) < 250  # a huge value is cut, the line stays readable
    assert set(ON).isdisjoint(OFF)

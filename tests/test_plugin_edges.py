"""``pytest --jaxdiff`` reads no-code as the CLI does: JAXDIFF_NO_CODE, --jaxdiff-no-code and the
jaxdiff_no_code ini option, every spelling (tests/cli/test_switches.py runs them through the CLI).

A project whose ``evil.py`` writes a marker when imported or called: with no-code on, the marker
never appears; an unknown value stops the run as a usage error naming the setting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_switches import BAD_SPELLINGS, EVIL, OFF_SPELLINGS, ON_SPELLINGS
from tests.test_pytest_plugin import _imported_before  # noqa: F401  (the fixture: JAX imported once, out here)

REFUSED = "is a file function and --no-code is on"


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    (pytester.path / "evil.py").write_text(EVIL)
    (pytester.path / "spec.yaml").write_text("function: evil.py:f\nprimals: {x: 1.0}\n")
    return pytester.path / "MARKER"


def run(pytester: pytest.Pytester, *args: str, plugin: bool = True) -> pytest.RunResult:
    """pytest in this process on the project; without hypothesis' plugin, which pytester would make
    import (and assert-rewrite) hypothesis again in every run: seconds each."""
    return pytester.runpytest_inprocess(
        *(["--jaxdiff"] if plugin else []), "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args
    )


def _refused(result: pytest.RunResult) -> bool:
    """Whether the spec was refused (its one item failed, saying why), not checked."""
    return result.ret == pytest.ExitCode.TESTS_FAILED and REFUSED in result.stdout.str()


@pytest.mark.parametrize("value", ON_SPELLINGS, ids=repr)
def test_every_on_spelling_of_the_variable_refuses(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", value)
    result = run(pytester)
    assert _refused(result), result.stdout.str()
    result.assert_outcomes(failed=1)
    assert not project.exists()


@pytest.mark.parametrize("value", OFF_SPELLINGS, ids=repr)
def test_every_off_spelling_of_the_variable_collects_the_checks(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", value)
    result = run(pytester, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "spec.yaml::ad_vs_fd[fwd]" in result.stdout.str()  # not refused: every check is an item


def test_off_runs_the_function_so_the_marker_can_appear(pytester: pytest.Pytester, project: Path) -> None:
    result = run(pytester, "-k", "spec")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert project.exists()  # the marker works: the tests above can fail


@pytest.mark.parametrize("value", BAD_SPELLINGS, ids=repr)
def test_an_unknown_value_of_the_variable_is_a_usage_error(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", value)
    for extra in ([], ["--jaxdiff-no-code"]):
        result = run(pytester, *extra)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
        assert len(errors) == 1 and "\x1b" not in errors[0], result.stderr.lines
        assert errors[0].startswith("ERROR: jaxdiff: JAXDIFF_NO_CODE: ") and "is neither on nor off" in errors[0]
        assert "on: 1, true, yes, on, y, t; off: 0, false, no, off, n, f" in errors[0]
    assert not project.exists()


def test_the_option_refuses(pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAXDIFF_NO_CODE", "0")  # either one on turns it on
    result = run(pytester, "--jaxdiff-no-code")
    assert _refused(result), result.stdout.str()
    assert not project.exists()


@pytest.mark.parametrize(
    ("ini", "refused"),
    [
        ("[pytest]\njaxdiff_no_code = 1\n", True),
        ("[pytest]\njaxdiff_no_code = Y\n", True),
        ("[pytest]\njaxdiff_no_code = t\n", True),
        ("[pytest]\njaxdiff_no_code = On\n", True),
        ("[pytest]\njaxdiff_no_code = no\n", False),
        ("[pytest]\njaxdiff_no_code =\n", False),
        ("[tool.pytest.ini_options]\njaxdiff_no_code = true\n", True),  # pyproject.toml, ini mode
        ("[tool.pytest.ini_options]\njaxdiff_no_code = 'y'\n", True),
        ("[tool.pytest]\njaxdiff_no_code = true\n", True),  # pyproject.toml, native TOML (pytest 9)
        ("[tool.pytest]\njaxdiff_no_code = 'yes'\n", True),
        ("[tool.pytest]\njaxdiff_no_code = false\n", False),
    ],
    ids=repr,
)
def test_the_ini_option(pytester: pytest.Pytester, project: Path, ini: str, refused: bool) -> None:
    if ini.startswith("[tool.pytest]") and pytest.version_tuple < (9, 0):
        pytest.skip("native TOML configuration is pytest 9's")
    name = "pytest.ini" if ini.startswith("[pytest]") else "pyproject.toml"
    (pytester.path / name).write_text(ini)
    result = run(pytester, "--collect-only", "-q")
    collected = result.stdout.str()
    assert ("spec.yaml::ad_vs_fd[fwd]" not in collected) is refused, collected
    if refused:
        result = run(pytester)
        assert _refused(result), result.stdout.str()
    assert not project.exists()


@pytest.mark.parametrize(
    "ini",
    ["[pytest]\njaxdiff_no_code = maybe\n", "[tool.pytest.ini_options]\njaxdiff_no_code = 'enable'\n"],
    ids=repr,
)
def test_an_unknown_ini_value_is_a_usage_error(pytester: pytest.Pytester, project: Path, ini: str) -> None:
    name = "pytest.ini" if ini.startswith("[pytest]") else "pyproject.toml"
    (pytester.path / name).write_text(ini)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "the jaxdiff_no_code ini option: " in errors[0] and "neither on nor off" in errors[0]
    result = run(pytester, "-o", "jaxdiff_no_code=nah")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not project.exists()


def test_settings_are_not_read_when_the_plugin_is_off(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project that has jaxdiff installed but does not use the plugin is not stopped by the variable."""
    monkeypatch.setenv("JAXDIFF_NO_CODE", "garbage")
    pytester.makepyfile(test_unit="def test_unit():\n    assert True\n")
    run(pytester, plugin=False).assert_outcomes(passed=1)


# --------------------------------------------------------------------------- names from a pull request


@pytest.mark.parametrize("folder", ["x\n::error::PWNED\x1b]8;;h\x1b\\", "bell\x07cr\rpct%0A,:"], ids=["lf-esc", "bel-cr"])
def test_failures_name_the_spec_in_printable_text(pytester: pytest.Pytester, folder: str) -> None:
    """jaxdiff's texts in pytest's report (a failure, an error, a skip's reason) are printable: no raw
    escape, no line a runner would take for a workflow command. (pytest's own node ids, which hold the
    path, are pytest's, and so is its JUnit writer: README, Security.)"""
    from jaxdiff_cli.safetext import printable

    where = pytester.mkdir(folder)
    (where / "wrong.yaml").write_text("function: x * 2\nprimals: {x: 1.0}\nexpect: {value: 3.0}\n")
    (where / "broken.yaml").write_text("function: x * 2\nprimals:\n  x: [1.0, abc]\n")
    recorded = pytester.inline_run("--jaxdiff", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    passed, skipped, failed = recorded.listoutcomes()
    assert (len(passed), len(skipped), len(failed)) == (7, 6, 2)
    texts = sorted(report.longreprtext for report in failed)
    reasons = [report.longrepr[2] for report in skipped if isinstance(report.longrepr, tuple)]
    assert len(reasons) == 6 and all(r.startswith("Skipped: the spec could not be checked: see ") for r in reasons)
    assert texts[0] == printable(f"{folder}/broken.yaml:3: primals.x[1]: 'abc' is not a number") + (
        " (numbers, nan, inf or -inf, or complex numbers such as 1+2j) (exit status 3 in jaxdiff check)"
    )
    assert texts[1].startswith(printable(f"{folder}/wrong.yaml:3: expect value: 1 of 1 entry outside tolerance"))
    for text in texts + reasons:
        assert all(ch.isprintable() or ch == "\n" for ch in text), text
        assert not [line for line in text.splitlines() if line.startswith("::")], text


def test_a_deep_flow_yaml_file_is_no_spec_and_no_crash(pytester: pytest.Pytester) -> None:
    # Telling a spec from other YAML read {...} files with plain PyYAML: 50,000 nested lists escaped as a
    # RecursionError during collection. The bounded reader refuses them: the file is left out, counted.
    pytester.makefile(".yaml", deep="{a: " + "[" * 50_000 + "]" * 50_000 + "}\n")
    result = pytester.runpytest_subprocess("--jaxdiff", "-p", "no:cacheprovider")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "deep.yaml" in result.stdout.str()  # in the count of YAML files that are no specs


@pytest.mark.parametrize("value", ["[true]", "{a = 1}"])
def test_an_ini_value_that_is_no_text_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makefile(".toml", pyproject=f"[tool.pytest.ini_options]\njaxdiff_no_code = {value}\n")
    pytester.makefile(".yaml", spec="function: x * 2\nprimals: {x: 1.0}\n")
    result = pytester.runpytest_subprocess("--jaxdiff", "-p", "no:cacheprovider")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "neither on nor off" in result.stderr.str()

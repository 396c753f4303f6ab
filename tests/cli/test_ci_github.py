"""GitHub Actions (issue 22.4): annotations name files from the checkout's root ($GITHUB_WORKSPACE),
findings on one line are one annotation, no more annotations than GitHub shows (the last says how many
more), and a Markdown job summary appended to $GITHUB_STEP_SUMMARY, read back with a CommonMark parser."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from jaxdiff_cli.checks.findings import Finding, Report, Worst
from jaxdiff_cli.output.reports import MAX_ANNOTATIONS, github_annotations, step_summary
from jaxdiff_cli.safetext import printable

from ..conftest import Cli
from .test_ci_text import FOLDERS

WRONG = "function: x * 2\nprimals: {x: 1.0}\nexpect:\n  value: 3.0\n"  # value is 2: fails at line 4
BROKEN = "function: x * 2\nprimals:\n  x: [1.0, abc]\n"  # a bad value at line 3
# Two wrong expectations on one line (flow style): one annotation, a line each.
ONE_LINE = "function: x * 2\nprimals: {x: 1.0}\nexpect: {value: 3.0, grad.x: 5.0}\n"


def _annotations(stdout: str) -> list[dict[str, str]]:
    found = []
    for line in stdout.splitlines():
        m = re.match(r"^::error (?P<props>[^:]*)::(?P<message>.*)$", line)
        if m:
            props = dict(p.split("=", 1) for p in m["props"].split(","))
            found.append({**props, "message": m["message"]})
    return found


def test_annotation_files_are_from_the_workspace_not_the_working_directory(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step with `working-directory: proj` runs in $GITHUB_WORKSPACE/proj: GitHub reads file= from the root."""
    workspace, outside = tmp_path / "ws", tmp_path / "elsewhere"
    (workspace / "proj" / "specs").mkdir(parents=True)
    outside.mkdir()
    (workspace / "proj" / "specs" / "wrong.yaml").write_text(WRONG)
    (outside / "broken.yaml").write_text(BROKEN)
    monkeypatch.chdir(workspace / "proj")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(workspace))
    ran = cli("check", "specs/wrong.yaml", str(outside / "broken.yaml"), "--output-format", "github")
    assert ran.exit_code == 3, ran.stderr
    assert [(a["file"], a["line"]) for a in _annotations(ran.stdout)] == [
        ("proj/specs/wrong.yaml", "4"),  # from the checkout's root
        (f"{outside}/broken.yaml".replace(":", "%3A").replace(",", "%2C"), "3"),  # outside it: absolute
    ]
    monkeypatch.delenv("GITHUB_WORKSPACE")  # not in GitHub Actions: the path as given, as before
    ran = cli("check", "specs/wrong.yaml", "--output-format", "github")
    assert [a["file"] for a in _annotations(ran.stdout)] == ["specs/wrong.yaml"]


def test_findings_on_one_line_are_one_annotation(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "one.yaml"
    spec.write_text(ONE_LINE)
    ran = cli("check", spec, "--output-format", "github")
    assert ran.exit_code == 1
    (annotation,) = _annotations(ran.stdout)
    assert annotation["line"] == "3" and annotation["title"] == f"jaxdiff check%3A {spec}%3A 2 failures"
    first, second = annotation["message"].split("%0A")  # GitHub shows each on a line of its own
    assert first.startswith("expect value: ") and second.startswith("expect grad.x: ")


def _reports(tmp_path: Path, n: int) -> list[Report]:
    reports = []
    for i in range(n):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(WRONG)
        worst = Worst("value", (), 2.0, 3.0, 0.0, 1e-5)
        reports.append(Report(spec=str(path), file=str(path), findings=[Finding("expect value", False, "1 of 1 entry", worst)]))
    return reports


@pytest.mark.parametrize("n", [MAX_ANNOTATIONS, MAX_ANNOTATIONS + 1, 25])
def test_no_more_annotations_than_github_shows_and_the_last_says_how_many_more(tmp_path: Path, n: int) -> None:
    lines = github_annotations(_reports(tmp_path, n), environ={})
    found = _annotations("\n".join(lines))
    assert len(found) == min(n, MAX_ANNOTATIONS)
    if n <= MAX_ANNOTATIONS:
        assert all("file" in a for a in found)
        return
    more = n - (MAX_ANNOTATIONS - 1)
    assert all("file" in a for a in found[:-1]) and "file" not in found[-1]
    assert found[-1]["message"].startswith(f"{more} more failures or errors are not annotated")


# ----------------------------------------------------------------------------- the job summary


def _tables(markdown: str) -> list[list[list[str]]]:
    """The tables of a Markdown document as a CommonMark parser with GitHub's tables reads them: rows of cell texts."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    tables = []
    for table in re.findall(r"<table>(.*?)</table>", rendered, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
        tables.append([[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in rows])
    assert "<img" not in rendered and "<a " not in rendered and "<em>" not in rendered and "<strong>" not in rendered
    return tables


def test_the_job_summary_is_appended_where_github_says(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong, broken = tmp_path / "wrong.yaml", tmp_path / "broken.yaml"
    wrong.write_text(WRONG)
    broken.write_text(BROKEN)
    summary = tmp_path / "step_summary.md"
    summary.write_text("## an earlier step's summary\n\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ran = cli("check", wrong, broken, "--json")  # in every output format
    assert ran.exit_code == 3, ran.stderr
    text = summary.read_text()
    assert text.startswith("## an earlier step's summary\n\n### jaxdiff check: 0 of 2 spec(s) passed\n")  # appended
    specs, failures, errors = _tables(text)
    checks = ran.json()["specs"][0]["checks"]
    counts = [len(checks), sum(c["passed"] for c in checks), sum(not c["passed"] for c in checks), 0]
    assert specs[1:] == [[str(wrong), *map(str, counts), "failed"], [str(broken), "0", "0", "0", "0", "error (exit 3)"]]
    assert failures[1:] == [[str(wrong), "expect value", "1 of 1 entry outside tolerance", "value[]", "2", "3", failures[1][-1]]]
    assert errors[1][:2] == [str(broken), "3"] and "'abc' is not a number" in errors[1][2]


def test_without_the_variable_no_summary_and_a_summary_that_cannot_be_written_is_a_warning(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "wrong.yaml"
    spec.write_text(WRONG)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert cli("check", spec).exit_code == 1 and list(tmp_path.iterdir()) == [spec]
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no" / "summary.md"))
    ran = cli("check", spec)
    assert ran.exit_code == 1  # the verdict is the check's
    assert f"warning: cannot write the job summary to {tmp_path}/no/summary.md" in ran.stderr


@pytest.mark.parametrize("folder", [*FOLDERS.values(), "| a | b |", "<img src=x onerror=alert(1)>", "*[link](http://x)*"])
def test_names_stay_text_in_their_cell(tmp_path: Path, folder: str) -> None:
    """A spec's name from a pull request renders as it is (printable), in its own cell: no markup, link or tag."""
    name = f"{folder}/wrong.yaml"
    worst = Worst("value", (0,), 2.0, 3.0, 0.0, 1e-5)
    report = Report(spec=name, findings=[Finding("expect value", False, "1 of 1 entry", worst)])
    specs, failures = _tables(step_summary([report]))
    assert specs[1] == [printable(name), "1", "0", "1", "0", "failed"]
    assert failures[1][:4] == [printable(name), "expect value", "1 of 1 entry", "value[0]"]

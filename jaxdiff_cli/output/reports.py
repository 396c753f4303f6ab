"""``check``'s reports for CI: JUnit XML, GitHub workflow commands and job summary, and a finding told
in one line. Each is built as text here; only the JUnit file and the job summary are written here.

Each check of each spec (and case) is one test: an ``expect:`` entry, AD vs FD in each mode, the
adjoint identity, the HVP modes, finiteness. A failure points at the line of the spec that caused
it: the ``expect:`` key that failed, the key of a bad value, or else the function. Lines come from
the YAML node marks of the spec's text (``inputs.yamlfile.locate``).

The JUnit XML follows the schema that Jenkins and GitLab read (testsuites > testsuite > testcase,
with failure, error or skipped; tests/assets/junit-10.xsd): ``testsuite`` carries name, tests,
failures, errors, skipped, time, timestamp and hostname, ``testcase`` only name, classname and time,
so the file points at the spec's line in the failure's text instead of in attributes that the schema
does not have. Its testcases are the pytest plugin's items, named and judged as ``pytest --jaxdiff
--junit-xml`` writes them (see Verdict).
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxdiff_cli import __version__
from jaxdiff_cli.atomic import atomic_open
from jaxdiff_cli.errors import JaxdiffError, OutputError, UsageError, join
from jaxdiff_cli.inputs.files import CLI, source_text
from jaxdiff_cli.inputs.yamlfile import locate
from jaxdiff_cli.safetext import markdown, printable, workflow_data, workflow_property
from jaxdiff_cli.switches import env_switch

if TYPE_CHECKING:
    from jaxdiff_cli.checks.findings import Finding, Report

OUTPUT_FORMATS = ("text", "json", "github")


def output_format(chosen: str | None, json_: bool) -> str:
    """check's output format: --output-format, --json, else github in GitHub Actions, else text."""
    if chosen is not None and chosen not in OUTPUT_FORMATS:
        raise UsageError(f"unknown format {chosen!r}", where="--output-format", hint="text, json or github")
    if json_ and chosen not in (None, "json"):
        raise UsageError(f"--json and --output-format {chosen} disagree", hint="give one of them")
    if chosen is not None:
        return chosen
    if json_:
        return "json"
    return "github" if env_switch("GITHUB_ACTIONS") else "text"  # the runner sets it to "true"


def number(v: float, digits: int = 7) -> str:
    """A float for people: 7 significant digits, and 0 for an exact zero of either sign."""
    return f"{v + 0.0:.{digits}g}"  # -0.0 + 0.0 is +0.0: an exact zero is never shown as -0


def numbers(ad: float, reference: float) -> tuple[str, str]:
    """Two values that differ, shown so that they differ: 7 significant digits, or as many more as it
    takes, and at worst each as its shortest repr (which tells any two float64 apart), so a failure
    never shows two equal numbers."""
    for digits in range(7, 17):
        a, r = number(ad, digits), number(reference, digits)
        if a != r or ad == reference or math.isnan(ad) or math.isnan(reference):
            return a, r
    return repr(ad + 0.0), repr(reference + 0.0)


def finding_line(f: Finding) -> str:
    """What a check found, in one line: its name, its detail and, for a failure, the worst entry
    with both values, the reference's error estimate and the gap allowed."""
    text = f"{f.name}: {f.detail}" if f.detail else f.name
    w = f.worst
    if w is None:
        return text
    entry = f"{w.output}{list(w.index)}"
    if math.isnan(w.reference):
        return f"{text}; {entry} is {number(w.ad)}"
    estimate = f" ± {w.error:.2g}" if w.error > 0 else ""  # an exact reference (an expected value) has none
    ad, reference = numbers(w.ad, w.reference)
    return f"{text}; worst {entry}: AD {ad}, reference {reference}{estimate} (gap allowed {w.bound:.2g})"


# --------------------------------------------------------------------------- where in the spec


@dataclass(frozen=True)
class Place:
    """Where a finding or error points: a file (None: the command line), a key path, a line and column."""

    file: str | None
    key: str | None
    line: int | None = None
    column: int | None = None


def finding_key(report: Report, finding: Finding) -> str:
    """The spec key a finding is about: its ``expect:`` entry, else the function."""
    name = finding.name.removeprefix("expect ") if finding.name.startswith("expect ") else None
    return join(report.key, join("expect", name) if name is not None else "function")


def place(file: str | None, key: str | None, line: int | None = None, texts: dict[str, str | None] | None = None) -> Place:
    """The line of ``key`` in ``file`` (read once per file when ``texts`` is shared)."""
    if file is None or file == CLI:
        return Place(None, key)
    if line is not None or not key:
        return Place(file, key, line)
    if texts is None:
        texts = {}
    if file not in texts:
        texts[file] = source_text(file)
    text = texts[file]
    found = locate(text, key) if text is not None else None
    return Place(file, key, *(found or (None, None)))


def error_place(error: BaseException, texts: dict[str, str | None] | None = None) -> Place:
    """Where an error is: the file, key path and line its ``where`` names (see errors.Where)."""
    where = getattr(error, "where", None)
    file = getattr(where, "file", None)
    key = getattr(where, "key", None)
    if file is None and where:  # an option (--mode) or a path typed on the command line
        return Place(None, str(where))
    return place(file, key or None, getattr(where, "line", None), texts)


# --------------------------------------------------------------------------- GitHub workflow commands


MAX_ANNOTATIONS = 10  # error annotations GitHub shows per step; the others are dropped without a word


def annotation_file(file: str, environ: Mapping[str, str] | None = None) -> str:
    """A spec's path as an annotation's ``file=``: GitHub reads it from the checkout's root
    (``$GITHUB_WORKSPACE``), not from the step's ``working-directory:``. So, where the variable is
    set, the path from there, or the absolute path for a spec outside it; else the path as given."""
    workspace = (os.environ if environ is None else environ).get("GITHUB_WORKSPACE")
    if not workspace or file.startswith("<"):
        return file
    absolute, root = os.path.abspath(file), os.path.abspath(workspace)
    if os.path.commonpath([absolute, root]) != root:
        return Path(absolute).as_posix()
    return Path(os.path.relpath(absolute, root)).as_posix()


def _command(kind: str, at: Place, title: str, messages: Sequence[str], environ: Mapping[str, str] | None) -> str:
    """One workflow command: every value printable, then escaped as @actions/core escapes it, so a
    file name cannot end a property, start a line or reach the log as an escape sequence. Several
    messages are lines of one annotation (the only line breaks: %0A between them)."""
    props = []
    if at.file is not None:
        props.append(f"file={workflow_property(annotation_file(at.file, environ))}")
        if at.line is not None:
            props.append(f"line={at.line}")
            if at.column is not None:
                props.append(f"col={at.column}")
    props.append(f"title={workflow_property(title)}")
    return f"::{kind} {','.join(props)}::{'%0A'.join(workflow_data(m) for m in messages)}"


def github_annotations(reports: Sequence[Report], environ: Mapping[str, str] | None = None) -> list[str]:
    """``::error file=…,line=…,col=…,title=…::message`` for every failed check and every spec that
    could not be checked, at the line of the spec that caused it, so a pull request shows it there.

    Findings on the same line are one annotation, a line each. GitHub shows MAX_ANNOTATIONS error
    annotations of a step and drops the rest unsaid: beyond them, the last one says how many more
    there are (the table in the log, and the job summary, have them all)."""
    texts: dict[str, str | None] = {}
    found: dict[object, _Annotation] = {}  # one per line of a spec
    for r in reports:
        for f in r.findings:
            if not f.passed and not f.skipped:
                _add(found, place(r.file, finding_key(r, f), texts=texts), r.spec, f.name, finding_line(f))
        if r.error is not None:
            _add(found, error_place(r.error, texts), r.spec, "", r.error.render())
    merged = [(a.at, _title(a.spec, a.names), a.messages) for a in found.values()]
    if len(merged) > MAX_ANNOTATIONS:
        more = len(merged) - (MAX_ANNOTATIONS - 1)
        lines = [_command("error", at, title, messages, environ) for at, title, messages in merged[: MAX_ANNOTATIONS - 1]]
        note = f"{more} more failures or errors are not annotated (GitHub shows {MAX_ANNOTATIONS} a step): see the log"
        return [*lines, _command("error", Place(None, None), f"jaxdiff check: {more} more", [note], environ)]
    return [_command("error", at, title, messages, environ) for at, title, messages in merged]


@dataclass
class _Annotation:
    at: Place
    spec: str
    names: list[str]  # of the findings on its line ("" for an error)
    messages: list[str]


def _add(found: dict[object, _Annotation], at: Place, spec: str, name: str, message: str) -> None:
    """One more finding: on the line of an annotation already there, a line of it."""
    key: object = (at.file, at.line) if at.file is not None and at.line is not None else len(found)
    annotation = found.setdefault(key, _Annotation(at, spec, [], []))
    annotation.names.append(name)
    annotation.messages.append(message)


def _title(spec: str, names: list[str]) -> str:
    named = [n for n in names if n]
    if len(names) == 1:
        return f"jaxdiff check: {spec}: {named[0]}" if named else f"jaxdiff check: {spec}"
    return f"jaxdiff check: {spec}: {len(names)} failures"


# --------------------------------------------------------------------------- the job summary

SUMMARY_ROWS = 50  # failures listed in the job summary; GitHub takes at most 1 MiB of it per step


def step_summary(reports: Sequence[Report]) -> str:
    """The Markdown job summary (``$GITHUB_STEP_SUMMARY``): a table of specs with their checks and
    verdicts, then the failures with their worst entries. Every text from a spec is Markdown-escaped
    (safetext.markdown), so a name cannot become a link, markup or a table cell of its own."""
    passed = sum(r.passed for r in reports)
    lines = [
        f"### jaxdiff check: {passed} of {len(reports)} spec(s) passed",
        "",
        "| spec | checks | passed | failed | skipped | result |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in reports:
        counts = [sum(f.passed and not f.skipped for f in r.findings), sum(not f.passed and not f.skipped for f in r.findings)]
        counts.append(sum(f.skipped for f in r.findings))
        if r.error is not None:
            result = f"error (exit {int(r.error.exit_code)})"
        else:
            result = "passed" if r.passed else "failed"
        cells = [f"{markdown(r.spec)}", str(len(r.findings)), *map(str, counts), result]
        lines.append("| " + " | ".join(cells) + " |")
    failures = [(r, f) for r in reports for f in r.findings if not f.passed and not f.skipped]
    errors = [r for r in reports if r.error is not None]
    if failures:
        lines += ["", "#### Failures", "", "| spec | check | detail | worst entry | AD | reference | gap allowed |"]
        lines.append("| --- | --- | --- | --- | ---: | ---: | ---: |")
        for r, f in failures[:SUMMARY_ROWS]:
            w = f.worst
            worst = ["", "", "", ""]
            if w is not None and not math.isnan(w.reference):
                worst = [f"{w.output}{list(w.index)}", *numbers(w.ad, w.reference), f"{w.bound:.2g}"]
            elif w is not None:
                worst = [f"{w.output}{list(w.index)}", number(w.ad), "", ""]
            lines.append("| " + " | ".join(markdown(c) for c in (r.spec, f.name, f.detail, *worst)) + " |")
        if len(failures) > SUMMARY_ROWS:
            lines += ["", f"and {len(failures) - SUMMARY_ROWS} more failures (the job's log has them all)"]
    if errors:
        lines += ["", "#### Specs that could not be checked", "", "| spec | exit status | error |", "| --- | ---: | --- |"]
        lines += [f"| {markdown(r.spec)} | {int(r.error.exit_code)} | {markdown(r.error.render())} |" for r in errors if r.error]
    return "\n".join(lines) + "\n\n"


def write_step_summary(reports: Sequence[Report], environ: Mapping[str, str] | None = None) -> str | None:
    """Append the job summary to ``$GITHUB_STEP_SUMMARY`` where it is set (GitHub Actions sets it for
    each step; other steps append to the same file). Returns why it could not, for a warning: the
    summary is an extra, and check's verdict stays its own."""
    path = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(step_summary(reports))
    except OSError as exc:
        return printable(f"cannot write the job summary to {path}: {exc.strerror or exc}")
    return None


# --------------------------------------------------------------------------- tests: check's and the plugin's
# A spec's (or case's) checks as tests, the same for check's JUnit report and the pytest plugin's items,
# so a project that moves from one to the other keeps its CI test history: the same names (pytest's
# node ids), the same verdicts, and the same rule, that of pytest: whatever goes wrong in a test is
# a failure (a spec that cannot be read or checked fails its ``spec`` test; its other tests are
# skipped, pointing at it). An error, in pytest, is a fixture's; jaxdiff's tests have none.


@dataclass(frozen=True)
class Verdict:
    """One test's outcome: passed, failed (``text``: what failed, one line each) or skipped (``text``: why)."""

    kind: str
    text: str = ""


def test_names(report: Report) -> tuple[str, ...]:
    """A report's tests: SPEC_TEST, then the checks (for a report built by hand, those its findings name)."""
    from jaxdiff_cli.checks.findings import DERIVATIVE_GROUPS, SPEC_TEST, groups_of

    if report.tests or report.error is not None:
        return (SPEC_TEST, *report.tests)
    named = {g for f in report.findings for g in groups_of(f.name)}
    expected = [g for f in report.findings for g in groups_of(f.name) if g.startswith("expect[")]
    return (SPEC_TEST, *dict.fromkeys(expected), *(g for g in DERIVATIVE_GROUPS if g in named))


def verdict(report: Report, test: str, texts: dict[str, str | None] | None = None) -> Verdict:
    """What one test of a report says, where the report has no error (see error_text for that)."""
    from jaxdiff_cli.checks.findings import SPEC_TEST, groups_of

    if test == SPEC_TEST:
        return Verdict("passed")
    mine = [f for f in report.findings if test in groups_of(f.name)]
    if test == "finite":  # findings no test knows about are not lost: the last test shows them
        mine += [f for f in report.findings if not groups_of(f.name)]
    if not mine:
        why = report.inapplicable.get(test)
        return Verdict("skipped", printable(f"{test} does not apply to this spec" + (f": {why}" if why else "")))
    failed = [f for f in mine if not f.passed and not f.skipped]
    if failed:
        texts = {} if texts is None else texts
        lines = []
        for f in failed:
            at = place(report.file, finding_key(report, f), texts=texts)
            spot = f"{at.file}:{at.line}" if at.line is not None else str(at.file)
            lines.append(printable(f"{spot}: {finding_line(f)}"))
        return Verdict("failed", "\n".join(lines))
    if all(f.skipped for f in mine):
        return Verdict("skipped", printable("; ".join(f"{f.name}: {f.detail}" if f.detail else f.name for f in mine)))
    return Verdict("passed")


def error_text(error: JaxdiffError) -> str:
    """The failure of a spec that could not be read or checked: jaxdiff's message, at ``file:line``
    as pytest shows places, and the exit status ``check`` gives it."""
    text, at = error.render(), error_place(error)  # render(): printable
    file = printable(at.file) if at.file is not None else None
    if file is not None and at.line is not None and text.startswith(f"{file}: "):
        text = f"{file}:{at.line}: {text.removeprefix(f'{file}: ')}"
    return f"{text} (exit status {int(error.exit_code)} in jaxdiff check)"


def skipped_for_error(spec_test: str) -> str:
    """Why a test of a spec that could not be checked is skipped: the test that failed for it."""
    return printable(f"the spec could not be checked: see {spec_test}")


def node_id(report: Report, test: str) -> str:
    """The test's pytest node id: the spec's path from the current folder (pytest's, from its root
    folder: the same where pytest runs from the project's root), the case, the test."""
    file = report.file or report.spec
    if not file.startswith("<"):
        absolute = os.path.abspath(file)
        inside = os.path.commonpath([absolute, os.getcwd()]) == os.getcwd()
        file = Path(os.path.relpath(absolute) if inside else absolute).as_posix()
    return "::".join([file, *([report.case] if report.case is not None else []), test])


def junit_names(nodeid: str) -> tuple[str, str]:
    """classname and name of a test, from its node id, as pytest's junitxml writes them
    (_pytest.junitxml.mangle_test_address): the path dotted, ``.py`` dropped, the names after it."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


# --------------------------------------------------------------------------- JUnit XML
# Every name and message is printable (safetext), which XML 1.0 can always hold: a NUL would make the
# file unreadable, a newline from a folder name start a line of a CI log that shows the failure.


def junit_xml(reports: Sequence[Report], versions: Mapping[str, str], now: datetime | None = None) -> str:
    """The JUnit XML document of ``check``: one testsuite per spec (and case), one testcase per test,
    named as ``pytest --jaxdiff --junit-xml`` names it. The spec's ``spec`` test takes the time of
    checking it (all its checks are computed together, as the plugin's first item computes them)."""
    import xml.etree.ElementTree as ET

    from jaxdiff_cli.checks.findings import SPEC_TEST

    now = now or datetime.now(timezone.utc)
    texts: dict[str, str | None] = {}
    root = ET.Element("testsuites", name="jaxdiff check")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for r in reports:
        counts = dict.fromkeys(totals, 0)
        suite = ET.SubElement(root, "testsuite", name=printable(r.spec))
        props = ET.SubElement(suite, "properties")
        for name, value in {"jaxdiff": __version__, **versions}.items():
            ET.SubElement(props, "property", name=name, value=printable(str(value)))
        spec_id = printable(node_id(r, SPEC_TEST))
        for test in test_names(r):
            cls, name = junit_names(node_id(r, test))
            seconds = r.seconds if test == SPEC_TEST else 0.0
            case = ET.SubElement(suite, "testcase", classname=printable(cls), name=printable(name), time=f"{seconds:.3f}")
            counts["tests"] += 1
            if r.error is not None:
                if test == SPEC_TEST:
                    counts["failures"] += 1
                    text = error_text(r.error)
                    ET.SubElement(case, "failure", type=type(r.error).__name__, message=text).text = text
                else:
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=skipped_for_error(spec_id))
                continue
            outcome = verdict(r, test, texts)
            if outcome.kind == "failed":
                counts["failures"] += 1
                ET.SubElement(case, "failure", type="CheckFailed", message=outcome.text).text = outcome.text
            elif outcome.kind == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=outcome.text)
        for key, count in counts.items():
            suite.set(key, str(count))
        suite.set("time", f"{r.seconds:.3f}")
        suite.set("timestamp", now.strftime("%Y-%m-%dT%H:%M:%S"))
        suite.set("hostname", socket.gethostname() or "localhost")
        for key in totals:
            totals[key] += counts[key]
        total_time += r.seconds
    for key in ("tests", "failures", "errors"):
        root.set(key, str(totals[key]))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def check_report_path(path: Path) -> None:
    """Fail before any work if the JUnit report cannot be written (its folder is missing, it is a folder)."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", where=f"--junit-xml {path}")
    if path.is_dir():
        raise OutputError("is a folder", where=f"--junit-xml {path}")


def write_junit(path: Path, document: str) -> None:
    """Write the JUnit report atomically (a CI job killed mid-write leaves the old file or none)."""
    try:
        with atomic_open(path) as handle:
            handle.write(document.encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"--junit-xml {path}") from None


def error_json(error: JaxdiffError) -> dict[str, Any]:
    """An error as ``--json`` prints it on stdout: ``{"error": {exit_code, message, file, key, line}}``.

    ``file`` is the spec (``<stdin>`` for stdin; null for the command line), ``key`` the key path
    in it (or the option), ``line`` the line of that key (from 1), or null where unknown.
    """
    return {"error": error_fields(error)}


def error_fields(error: JaxdiffError) -> dict[str, Any]:
    """exit_code, message, file, key and line of an error (the ``error`` of every JSON document)."""
    at = error_place(error)
    return {"exit_code": int(error.exit_code), "message": error.render(), "file": at.file, "key": at.key, "line": at.line}

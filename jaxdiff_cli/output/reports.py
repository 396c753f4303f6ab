"""``check``'s reports for CI: JUnit XML, GitHub workflow commands, and a finding told in one line. Pure.

Each check of each spec (and case) is one test: an ``expect:`` entry, AD vs FD in each mode, the
adjoint identity, the HVP modes, finiteness. A failure points at the line of the spec that caused
it: the ``expect:`` key that failed, the key of a bad value, or else the function. Lines come from
the YAML node marks of the spec's text (``inputs.yamlfile.locate``).

The JUnit XML follows the schema that Jenkins and GitLab read (testsuites > testsuite > testcase,
with failure, error or skipped): ``testsuite`` carries name, tests, failures, errors, skipped, time,
timestamp and hostname, ``testcase`` only name, classname and time, so the file points at the spec's
line in the failure's text instead of in attributes that the schema does not have.
"""

from __future__ import annotations

import math
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
from jaxdiff_cli.safetext import printable, workflow_data, workflow_property
from jaxdiff_cli.switches import env_switch

if TYPE_CHECKING:
    from jaxdiff_cli.checks.findings import Finding, Report

OUTPUT_FORMATS = ("text", "json", "github")
ERROR_CASE = "spec"  # the testcase of a spec (or case) that could not be checked


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


def number(v: float) -> str:
    """A float for people: 7 significant digits, and 0 for an exact zero of either sign."""
    return f"{v + 0.0:.7g}"  # -0.0 + 0.0 is +0.0: an exact zero is never shown as -0


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
    return f"{text}; worst {entry}: AD {number(w.ad)}, reference {number(w.reference)}{estimate} (gap allowed {w.bound:.2g})"


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


def _command(kind: str, at: Place, title: str, message: str) -> str:
    """One workflow command: every value printable, then escaped as @actions/core escapes it, so a
    file name cannot end a property, start a line or reach the log as an escape sequence."""
    props = []
    if at.file is not None:
        props.append(f"file={workflow_property(at.file)}")
        if at.line is not None:
            props.append(f"line={at.line}")
            if at.column is not None:
                props.append(f"col={at.column}")
    props.append(f"title={workflow_property(title)}")
    return f"::{kind} {','.join(props)}::{workflow_data(message)}"


def github_annotations(reports: Sequence[Report]) -> list[str]:
    """``::error file=…,line=…,col=…,title=…::message`` for every failed check and every spec that
    could not be checked, at the line of the spec that caused it, so a pull request shows it there."""
    texts: dict[str, str | None] = {}
    lines = []
    for r in reports:
        for f in r.findings:
            if not f.passed:
                at = place(r.file, finding_key(r, f), texts=texts)
                lines.append(_command("error", at, f"jaxdiff check: {r.spec}: {f.name}", finding_line(f)))
        if r.error is not None:
            at = error_place(r.error, texts)
            lines.append(_command("error", at, f"jaxdiff check: {r.spec}", r.error.render()))
    return lines


# --------------------------------------------------------------------------- JUnit XML
# Every name and message is printable (safetext), which XML 1.0 can always hold: a NUL would make the
# file unreadable, a newline from a folder name start a line of a CI log that shows the failure.


def classname(report: Report) -> str:
    """The spec as a JUnit class name: its path without the suffix, dotted (``configs.seed000_poly``),
    then the case (``.scalars``), so Jenkins and GitLab group the checks of a spec and of a case."""
    file = report.file or report.spec
    stem = Path(file).with_suffix("").as_posix().strip("/.<>") if not file.startswith("<") else file.strip("<>")
    name = stem.replace("/", ".")
    return f"{name}.{report.case}" if report.case is not None else name


def junit_xml(reports: Sequence[Report], versions: Mapping[str, str], now: datetime | None = None) -> str:
    """The JUnit XML document of ``check``: one testsuite per spec (and case), one testcase per check."""
    import xml.etree.ElementTree as ET

    now = now or datetime.now(timezone.utc)
    texts: dict[str, str | None] = {}
    root = ET.Element("testsuites", name="jaxdiff check")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for r in reports:
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.SubElement(root, "testsuite", name=printable(r.spec))
        props = ET.SubElement(suite, "properties")
        for name, value in {"jaxdiff": __version__, **versions}.items():
            ET.SubElement(props, "property", name=name, value=printable(str(value)))
        cls = printable(classname(r))
        for f in r.findings:
            case = ET.SubElement(suite, "testcase", name=printable(f.name), classname=cls)
            counts["tests"] += 1
            if f.skipped:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=printable(f.detail))
            elif not f.passed:
                counts["failures"] += 1
                at = place(r.file, finding_key(r, f), texts=texts)
                failure = ET.SubElement(case, "failure", type="CheckFailed", message=printable(finding_line(f)))
                failure.text = _story(at, finding_line(f))
        if r.error is not None:
            case = ET.SubElement(suite, "testcase", name=ERROR_CASE, classname=cls)
            counts["tests"] += 1
            counts["errors"] += 1
            at = error_place(r.error, texts)
            error = ET.SubElement(case, "error", type=type(r.error).__name__, message=printable(r.error.render()))
            error.text = _story(at, r.error.render(), f"exit status {int(r.error.exit_code)}")
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", str(counts["errors"]))
        suite.set("skipped", str(counts["skipped"]))
        suite.set("time", f"{r.seconds:.3f}")
        suite.set("timestamp", now.strftime("%Y-%m-%dT%H:%M:%S"))
        suite.set("hostname", socket.gethostname() or "localhost")
        for key in totals:
            totals[key] += counts[key]
        total_time += r.seconds
    for key, count in totals.items():
        root.set(key, str(count))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _story(at: Place, *lines: str) -> str:
    """A failure's text: where in the spec (``file:line``, key), then what happened, one line each;
    every part printable, so the only line breaks are these."""
    text = "\n".join(printable(line) for line in lines)
    if at.file is None:
        return f"{printable(at.key)}: {text}" if at.key else text
    spot = printable(f"{at.file}:{at.line}" if at.line is not None else at.file)
    return f"{spot}: {printable(at.key)}\n{text}" if at.key else f"{spot}\n{text}"


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

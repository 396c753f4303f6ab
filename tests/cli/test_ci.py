"""jaxdiff in CI: JUnit XML, GitHub annotations on the spec's line, --case, errors as JSON, warnings on stderr."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import CONFIGS, Cli, SpecFile

# A spec whose second expectation is wrong (jacobian.x[1, 1] is 4, not 5): the failing key is on line 7.
WRONG = """\
# a wrong expectation
function: "lambda x: x**2"
primals:
  x: [1.0, 2.0]
expect:
  value: [1.0, 4.0]
  jacobian.x: [[2.0, 0.0], [0.0, 5.0]]
"""
# A bad value at line 4, column 11 (the item 'abc').
BROKEN = "function: x\nprimals:\n  x:\n    [1.0, abc]\n"
CASES = """\
function: "lambda x: jnp.sum(x**2)"
cases:
  - name: small
    primals: {x: [1.0]}
    expect: {value: 1.0}
  - name: vector
    primals: {x: [1.0, 2.0]}
    expect:
      grad.x: [2.0, 3.0]
"""


# ----------------------------------------------------------------------------- JUnit XML

# A spec that cannot even be read (a YAML error): only its spec test, failed.
UNREADABLE = "function: x\nprimals: [1.0\n"
# A spec that reads but cannot be checked: its function fails to trace (exit 4).
UNTRACEABLE = 'function: "lambda x: x @ jnp.ones(3)"\nprimals:\n  x: [1.0, 2.0]\nexpect:\n  value: 1.0\n'
# The schema Jenkins reads (the xunit plugin's junit-10.xsd), kept in the repository: tests run offline.
JUNIT_XSD = Path(__file__).resolve().parents[1] / "assets" / "junit-10.xsd"


def validate_junit(path: Path) -> None:
    import xmlschema

    xmlschema.XMLSchema(JUNIT_XSD).validate(path)


def test_the_vendored_schema_refuses_what_jenkins_refuses(spec_file: SpecFile) -> None:
    """The validator itself: it must fail on documents Jenkins would not read, or it proves nothing."""
    import xmlschema

    bad = [
        '<testsuites><testsuite name="a" tests="1" failures="0"><testcase name="t"/></testsuite></testsuites>',
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><testcase/></testsuite></testsuites>',
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><testcase name="t" line="3"/></testsuite>'
        "</testsuites>",
        '<testsuites><testcase name="t"/></testsuites>',
        '<testsuites skipped="1"/>',
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0" time="1e-3"/></testsuites>',
    ]
    for i, text in enumerate(bad):
        path = spec_file(text, f"bad{i}.xml")
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            validate_junit(path)
    validate_junit(spec_file(bad[0].replace('failures="0"', 'failures="0" errors="0"'), "good.xml"))


def _testcases(path: Path) -> dict[tuple[str, str], str]:
    """(classname, name) -> passed, failure, error or skipped, and the time of each, read by junitparser."""
    from junitparser import Error, Failure, JUnitXml, Skipped

    found = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kinds = {type(r) for r in case.result}
            kind = "failure" if Failure in kinds else "error" if Error in kinds else "skipped" if Skipped in kinds else "passed"
            found[(case.classname, case.name)] = kind
    return found


def test_junit_xml_one_testcase_per_spec_case_and_test(
    cli: Cli, tmp_path: Path, spec_file: SpecFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    wrong, broken, cases, untraceable, unreadable = (
        spec_file(WRONG, "specs/wrong.yaml"),
        spec_file(BROKEN, "specs/broken.yaml"),
        spec_file(CASES, "specs/cases.yaml"),
        spec_file(UNTRACEABLE, "specs/untraceable.yaml"),
        spec_file(UNREADABLE, "specs/unreadable.yaml"),
    )
    report = tmp_path / "report.xml"
    args = [str(p.relative_to(tmp_path)) for p in (wrong, broken, cases, untraceable, unreadable)]
    ran = cli("check", *args, "--junit-xml", report, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr  # a bad spec's 3 wins over a failed check's 1
    doc = ran.json()
    validate_junit(report)
    root = ET.parse(report).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [s["spec"] for s in doc["specs"]]
    for suite in suites:
        cases_ = suite.findall("testcase")
        assert int(suite.get("tests", -1)) == len(cases_)
        for kind in ("failure", "error", "skipped"):
            assert int(suite.get(f"{kind}s" if kind != "skipped" else kind, -1)) == sum(c.find(kind) is not None for c in cases_)
        # every testcase has a time; the spec's test holds the time of checking it (as the plugin's first item)
        assert all(float(c.get("time", "nan")) >= 0 for c in cases_)
        assert float(cases_[0].get("time", 0)) == float(suite.get("time", -1))
    for key in ("tests", "failures", "errors"):
        assert int(root.get(key, -1)) == sum(int(s.get(key, 0)) for s in suites)
    found = _testcases(report)
    # pytest's names: the spec's path dotted (its suffix kept), the case, then the item
    assert found == {
        ("specs.wrong.yaml", "spec"): "passed",
        ("specs.wrong.yaml", "expect[value]"): "passed",
        ("specs.wrong.yaml", "expect[jacobian.x]"): "failure",
        ("specs.wrong.yaml", "ad_vs_fd[fwd]"): "passed",
        ("specs.wrong.yaml", "ad_vs_fd[rev]"): "passed",
        ("specs.wrong.yaml", "adjoint"): "passed",
        ("specs.wrong.yaml", "hvp"): "skipped",  # not scalar
        ("specs.wrong.yaml", "hessian"): "skipped",
        ("specs.wrong.yaml", "finite"): "passed",
        ("specs.broken.yaml", "spec"): "failure",  # a bad value: a failure, as pytest reports it ...
        **{("specs.broken.yaml", t): "skipped" for t in ("ad_vs_fd[fwd]", "ad_vs_fd[rev]", "adjoint", "hvp")},
        **{("specs.broken.yaml", t): "skipped" for t in ("hessian", "finite")},  # ... the others point at it
        **{("specs.cases.yaml.small", t): "passed" for t in ("spec", "expect[value]", "ad_vs_fd[fwd]", "ad_vs_fd[rev]")},
        **{("specs.cases.yaml.small", t): "passed" for t in ("adjoint", "hvp", "hessian", "finite")},
        ("specs.cases.yaml.vector", "spec"): "passed",
        ("specs.cases.yaml.vector", "expect[grad.x]"): "failure",
        **{("specs.cases.yaml.vector", t): "passed" for t in ("ad_vs_fd[fwd]", "ad_vs_fd[rev]", "adjoint", "hvp", "hessian")},
        ("specs.cases.yaml.vector", "finite"): "passed",
        ("specs.untraceable.yaml", "spec"): "failure",  # cannot be checked: its spec test fails, the rest skip
        **{("specs.untraceable.yaml", t): "skipped" for t in ("expect[value]", "ad_vs_fd[fwd]", "ad_vs_fd[rev]", "adjoint")},
        **{("specs.untraceable.yaml", t): "skipped" for t in ("hvp", "hessian", "finite")},
        ("specs.unreadable.yaml", "spec"): "failure",  # cannot be read: its only test
    }
    assert root.get("failures") == "5" and root.get("errors") == "0"
    # the failure: the spec's line, the worst entry, both values
    failure = suites[0].find("testcase[@name='expect[jacobian.x]']/failure")
    assert failure is not None
    assert failure.get("message") == failure.text
    assert (failure.text or "").startswith("specs/wrong.yaml:7: expect jacobian.x: 1 of 4 entries outside tolerance;")
    assert "worst jacobian.x[1, 1]: AD 4, reference 5" in (failure.text or "")
    error = suites[1].find("testcase[@name='spec']/failure")
    assert error is not None and error.get("type") == "SpecError"
    assert (error.text or "").startswith("specs/broken.yaml:4: primals.x[1]: 'abc' is not a number")
    assert (error.text or "").endswith("(exit status 3 in jaxdiff check)")
    skipped = suites[4].find("testcase[@name='adjoint']/skipped")
    assert skipped is not None and skipped.get("message") == "the spec could not be checked: see specs/untraceable.yaml::spec"
    # cases: one suite each, named as check names them
    assert [s.get("name") for s in suites[2:4]] == ["specs/cases.yaml: cases[0] (small)", "specs/cases.yaml: cases[1] (vector)"]
    failure = suites[3].find("testcase[@name='expect[grad.x]']/failure")
    assert failure is not None and (failure.text or "").startswith("specs/cases.yaml:9: expect grad.x:")


@pytest.mark.slow
def test_check_and_pytest_write_the_same_junit_testcases(cli: Cli, pytester: pytest.Pytester) -> None:
    """A project that moves between `check --junit-xml` and `pytest --jaxdiff --junit-xml` keeps its CI
    test history: the same classnames and names, the same verdicts, the same counts (pytest's own junitxml
    is the reference; it runs in a subprocess, as CI runs it)."""
    pytester.makeini("[pytest]\n")
    texts = {"wrong": WRONG, "broken": BROKEN, "cases": CASES, "untraceable": UNTRACEABLE, "unreadable": UNREADABLE}
    for name, text in texts.items():
        pytester.makefile(".yaml", **{f"specs/{name}": text})
    specs = [f"specs/{name}.yaml" for name in texts]
    ran = cli("check", *specs, "--junit-xml", "check.xml", "-q")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr
    result = pytester.runpytest_subprocess("--jaxdiff", "specs", "--junit-xml=pytest.xml", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    validate_junit(pytester.path / "check.xml")
    validate_junit(pytester.path / "pytest.xml")
    ours, theirs = _testcases(pytester.path / "check.xml"), _testcases(pytester.path / "pytest.xml")
    assert ours == theirs
    assert sorted(ours.values()).count("failure") == 5 and "error" not in ours.values()

    def totals(path: Path) -> tuple[int, int, int, int]:
        from junitparser import JUnitXml

        xml = JUnitXml.fromfile(str(path))
        suites = list(xml)
        return tuple(sum(int(getattr(s, k) or 0) for s in suites) for k in ("tests", "failures", "errors", "skipped"))  # type: ignore[return-value]

    assert totals(pytester.path / "check.xml") == totals(pytester.path / "pytest.xml")


def test_junit_xml_is_refused_before_any_work_where_it_cannot_be_written(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    spec = spec_file(WRONG, "wrong.yaml")
    ran = cli("check", spec, "--junit-xml", tmp_path / "no" / "r.xml")
    assert (
        ran.exit_code == ExitCode.BAD_INPUT
        and ran.stderr == f"error: --junit-xml {tmp_path}/no/r.xml: folder {tmp_path}/no does not exist\n"
    )


# ----------------------------------------------------------------------------- GitHub annotations


def _annotations(stdout: str) -> list[dict[str, str]]:
    found = []
    for line in stdout.splitlines():
        m = re.match(r"^::error (?P<props>[^:]*)::(?P<message>.*)$", line)
        if m:
            props = dict(p.split("=", 1) for p in m["props"].split(","))
            found.append({**props, "message": m["message"]})
    return found


def test_github_annotations_point_at_the_failing_line(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    wrong, broken, cases = (
        spec_file(WRONG, "wrong.yaml"),
        spec_file(BROKEN, "broken.yaml"),
        spec_file(CASES, "cases.yaml"),
    )
    ran = cli("check", wrong, broken, cases, "--output-format", "github")
    assert ran.exit_code == ExitCode.BAD_INPUT
    found = _annotations(ran.stdout)
    assert [(a["file"], a["line"], a.get("col")) for a in found] == [
        (str(wrong), "7", "3"),  # the expect key that failed
        (str(broken), "4", "11"),  # the bad value itself
        (str(cases), "9", "7"),  # the case's own expect key
    ]
    assert found[0]["title"] == f"jaxdiff check%3A {wrong}%3A expect jacobian.x"
    assert "worst jacobian.x[1, 1]: AD 4, reference 5" in found[0]["message"]
    assert "FAIL" in ran.stdout  # the table follows, for the log


def test_github_is_the_default_in_github_actions_and_json_still_wins(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: SpecFile
) -> None:
    spec = spec_file(WRONG, "wrong.yaml")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert _annotations(cli("check", spec).stdout)
    assert cli("check", spec, "--json").json()["passed"] is False
    assert cli("check", spec, "--output-format", "text").stdout.startswith("FAIL")
    ran = cli("check", spec, "--json", "--output-format", "github")
    assert ran.exit_code == ExitCode.USAGE and "disagree" in ran.stderr
    ran = cli("check", spec, "--output-format", "xml")
    assert (
        ran.exit_code == ExitCode.USAGE and ran.stderr == "error: --output-format: unknown format 'xml' (text, json or github)\n"
    )


def test_a_message_with_newlines_and_percent_is_escaped() -> None:
    """Printable first (a newline is shown as \\n, tests/cli/test_ci_text.py), then @actions/core's escapes."""
    from jaxdiff_cli.checks.findings import Finding, Report
    from jaxdiff_cli.output.reports import github_annotations

    report = Report(spec="a,b:c.yaml", findings=[Finding("expect x", False, "100% off\nreally")], file=None)
    (line,) = github_annotations([report])
    assert line == "::error title=jaxdiff check%3A a%2Cb%3Ac.yaml%3A expect x::expect x: 100%25 off\\nreally"


# ----------------------------------------------------------------------------- --case


def test_case_picks_cases_by_name_or_glob(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    cases = spec_file(CASES, "cases.yaml")
    doc = cli("check", cases, "--case", "small", "--json").json()
    assert [s["spec"] for s in doc["specs"]] == [f"{cases}: cases[0] (small)"] and doc["passed"]
    doc = cli("check", cases, CONFIGS / "seed000_poly.yaml", "--case", "v*", "--json").json()
    assert [s["spec"] for s in doc["specs"]] == [f"{cases}: cases[1] (vector)"]  # a spec without cases: is left out
    ran = cli("check", cases, "--case", "nope")
    assert ran.exit_code == ExitCode.USAGE and ran.stderr == "error: --case: no case is named nope (cases: small, vector)\n"
    # a computing command takes the one case picked
    ran = cli("grad", cases, "--case", "vector", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.json()["outputs"]["grad.x"]["data"] == [2.0, 4.0]
    assert ran.json()["spec"] == str(cases) and ran.json()["case"] == "vector"
    ran = cli("grad", cases, "--case", "*")
    assert ran.exit_code == ExitCode.USAGE and "--case: * picks 2 cases (small, vector); this command computes one" in ran.stderr
    ran = cli("grad", CONFIGS / "seed000_poly.yaml", "--case", "a")
    assert ran.exit_code == ExitCode.USAGE and "--case: this spec has no cases: to pick from" in ran.stderr
    ran = cli("grad", cases)
    assert ran.exit_code == ExitCode.BAD_INPUT and "pick one with --case NAME" in ran.stderr


def test_run_takes_case_too(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    spec = spec_file(CASES.replace("cases:", "run: [eval]\ncases:"), "cases.yaml")
    doc = cli("run", spec, "--case", "vec*", "--json").json()
    assert [c["name"] for c in doc["cases"]] == ["vector"]
    ran = cli("run", spec, "--case", "x")
    assert ran.exit_code == ExitCode.USAGE and "no case is named x (cases: small, vector)" in ran.stderr


def test_a_case_left_out_is_not_built(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    """A broken case that --case does not pick does not stop the others."""
    spec = spec_file(CASES + "  - name: broken\n    primals: {x: [1.0, abc]}\n", "cases.yaml")
    assert cli("check", spec, "--case", "small").exit_code == ExitCode.OK
    assert cli("check", spec).exit_code == ExitCode.BAD_INPUT


# ----------------------------------------------------------------------------- stdin names itself the same way


def test_a_spec_from_stdin_is_stdin_in_every_output(cli: Cli) -> None:
    text = CASES.replace("cases:", "run: [eval]\ncases:")
    assert cli("run", "-", "--json", input=text).json()["spec"] == "<stdin>"
    specs = cli("check", "-", "--json", input=text).json()["specs"]
    assert [s["spec"] for s in specs] == ["<stdin>: cases[0] (small)", "<stdin>: cases[1] (vector)"]
    assert cli("eval", "-", "--case", "small", "--json", input=text).json()["spec"] == "<stdin>"
    ran = cli("eval", "-", "--case", "small", "--json", input=text.replace("[1.0]", "[1.0, abc]"))
    assert ran.stderr.startswith("error: <stdin>: cases[0]: primals.x[1]: 'abc' is not a number")
    assert ran.json()["error"]["file"] == "<stdin>" and ran.json()["error"]["line"] == 5


# ----------------------------------------------------------------------------- errors as JSON, warnings


def test_json_errors_name_file_key_and_line(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    broken = spec_file(BROKEN, "broken.yaml")
    ran = cli("eval", broken, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert ran.json() == {
        "error": {
            "exit_code": 3,
            "message": f"{broken}: primals.x[1]: 'abc' is not a number"
            " (numbers, nan, inf or -inf, or complex numbers such as 1+2j)",
            "file": str(broken),
            "key": "primals.x[1]",
            "line": 4,
        }
    }
    assert ran.stderr == f"error: {ran.json()['error']['message']}\n"  # the line on stderr as well
    ran = cli("eval", spec_file("function: x\nprimals: [1\n", "syntax.yaml"), "--json")
    assert ran.json()["error"]["line"] == 3 and ran.json()["error"]["key"] is None  # a syntax error: a line, no key
    ran = cli("jacobian", "-f", "x", "-p", "x=[1.0]", "--mode", "sideways", "--json")
    assert ran.exit_code == ExitCode.USAGE
    assert ran.json()["error"] == {
        "exit_code": 2,
        "message": "--mode: unknown mode 'sideways' (fwd, rev, auto)",
        "file": None,
        "key": "--mode",
        "line": None,
    }
    ran = cli("run", broken, "--json")
    assert ran.json()["error"]["key"] == "run" and "which operations to run?" in ran.json()["error"]["message"]
    ran = cli("run", spec_file(BROKEN + "run: [eval]\n", "run.yaml"), "--json")  # a case's error, in its place
    assert ran.exit_code == ExitCode.BAD_INPUT and (
        ran.json()["cases"][0]["error"]["key"],
        ran.json()["cases"][0]["error"]["line"],
    ) == (
        "primals.x[1]",
        4,
    )
    assert cli("eval", broken).stdout == ""  # without --json, stdout stays empty


def test_check_json_errors_carry_the_line_too(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    broken = spec_file(BROKEN, "broken.yaml")
    error = cli("check", broken, "--json").json()["specs"][0]["error"]
    assert (error["file"], error["key"], error["line"], error["exit_code"]) == (str(broken), "primals.x[1]", 4, 3)


def test_warnings_reach_stderr_in_every_format(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    ran = cli("eval", "-f", "x * 1", "-p", "x=[nan, 1.0]", "--json")
    assert ran.json()["warnings"] == ["value[0] is nan (the first non-finite entry)"]
    assert "warning: value[0] is nan" in ran.stderr
    spec = spec_file("function: x * 1e30\nprimals: {x: [1.0e8, nan]}\nrun: [eval]\n", "run.yaml")
    ran = cli("run", spec, "--json")
    assert ran.exit_code == ExitCode.OK
    warnings = ran.json()["warnings"]
    assert any("float32 may lose the answer: value reaches" in w for w in warnings)
    assert any("value[1] is nan" in w for w in warnings)
    for w in warnings:
        assert f"warning: {w}" in ran.stderr


# ----------------------------------------------------------------------------- init


def test_init_round_trip_through_check_update(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "poly.yaml"
    ran = cli("init", "lambda x, w: (x + w) * x**2", "-p", "x=[3.0, 1.0, 2.0]", "-p", "w=[1.0, -1.0, 2.2]", "-w", "x", "-o", spec)
    assert ran.exit_code == ExitCode.OK, ran.stderr
    text = spec.read_text()
    assert 'function: "lambda x, w: (x + w) * x**2"' in text and "  x: [3.0, 1.0, 2.0]" in text and "wrt: [x]" in text
    assert "expect: {}" in text and text.count("\n#") >= 5  # commented
    assert cli("check", spec).exit_code == ExitCode.OK  # a valid spec from the start: AD vs FD, nothing expected yet
    ran = cli("check", "--update", spec)
    assert ran.exit_code == ExitCode.OK, ran.stdout
    doc = cli("check", spec, "--json").json()
    names = [c["name"] for c in doc["specs"][0]["checks"]]
    assert doc["passed"] and "expect value" in names and "expect jacobian.x" in names
    assert "# The inputs, by parameter name" in spec.read_text()  # only the expect block was rewritten
    spec.write_text(spec.read_text().replace("[33.0, 0.0, 0.0]", "[34.0, 0.0, 0.0]"))
    assert cli("check", spec).exit_code == ExitCode.CHECK_FAILED  # a changed derivative now fails


def test_init_comments_hold_tangents_and_cotangents_of_the_right_shape(cli: Cli, tmp_path: Path) -> None:
    # Uncommenting the starter's tangents/cotangents lines gives a spec that jvp and vjp accept, for a
    # pytree primal and a pytree output with one large leaf (written as a constructor, not a list).
    spec = tmp_path / "tree.yaml"
    fn = 'lambda p, s: {"a": p["a"] * s, "b": jnp.outer(p["a"], jnp.ones(12)) * s}'
    ran = cli("init", fn, "-p", "p={a: [1.0, 2.0]}", "-p", "s=3.0", "-o", spec)
    assert ran.exit_code == ExitCode.OK, ran.stderr
    text = spec.read_text()
    assert "# tangents: {p: {a: [1.0, 1.0]}}" in text
    assert "# cotangents: {a: [1.0, 1.0], b: {ones: [2, 12]}}" in text and "b shape (2, 12)" in text
    spec.write_text(text.replace("# tangents:", "tangents:").replace("# cotangents:", "cotangents:"))
    jvp = cli("jvp", spec, "--json")
    assert jvp.exit_code == ExitCode.OK, jvp.stderr
    np.testing.assert_allclose(jvp.json()["outputs"]["jvp.a"]["data"], [3.0, 3.0])  # d(a*s)/da . 1 = s
    vjp = cli("vjp", spec, "--json")
    assert vjp.exit_code == ExitCode.OK, vjp.stderr
    np.testing.assert_allclose(vjp.json()["outputs"]["vjp.p.a"]["data"], [3.0 + 36.0, 3.0 + 36.0])  # s + 12 s


def test_init_says_why_when_the_output_shape_is_unknown(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    ran = cli("init", "lambda x: x @ jnp.ones(3)", "-p", "x=[1.0, 2.0]", "-o", spec)
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert "# cotangents: shaped like the output. The function could not be evaluated here (" in spec.read_text()
    assert ran.stderr.startswith(
        "warning: the function could not be evaluated at these primals (s.yaml: function: the function failed to trace"
    )
    assert "check will say the same" in ran.stderr and cli("check", spec).exit_code == ExitCode.FUNCTION


def test_init_never_overwrites(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("mine\n")
    ran = cli("init", "x * 2", "-p", "x=1.0", "-o", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and ran.stderr.startswith(
        f"error: -o {spec}: exists: jaxdiff init never overwrites a file"
    )
    assert spec.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_init_refuses_what_a_spec_would_refuse(cli: Cli, tmp_path: Path) -> None:
    for args, code, message in [
        (["x"], 2, "--primal: init needs the function's primals"),
        (["x", "-p", "x=[1,"], 3, "<command line>: --primal x: line 1"),
        (["x", "-p", "x=1", "-w", "y"], 3, "<command line>: --wrt: 'y' is not a primal; primals are x"),
        (["x", "-p", "x=1", "--dtype", "float16"], 3, "unknown dtype 'float16'"),
        (["lambda x: x.dtype", "-p", "x=1"], 4, "<command line>: function: expression rejected: attribute 'dtype'"),
    ]:
        ran = cli("init", *args, "-o", tmp_path / "s.yaml")
        assert ran.exit_code == code and message in ran.stderr, (args, ran.stderr)
    assert not list(tmp_path.iterdir())  # nothing written


# ----------------------------------------------------------------------------- shell completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script(cli: Cli, shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer detects the user's shell from the parent process; here the shell is named instead.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    ran = cli("--show-completion", shell)
    assert ran.exit_code == ExitCode.OK
    assert "_JAXDIFF_COMPLETE" in ran.stdout and f"complete_{shell}" in ran.stdout


@pytest.mark.slow
def test_show_completion_prints_the_named_shells_script_from_bash() -> None:
    """Started from the real bash (which Typer detects), a named shell wins: zsh's script, not bash's."""
    import shlex
    import shutil
    import subprocess
    import sys

    bash = shutil.which("bash")
    assert bash is not None  # CI has bash: the shell the bug shows in

    def script(*args: str) -> str:
        command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "jaxdiff_cli", *args])
        out = subprocess.run([bash, "-c", command], capture_output=True, text=True, timeout=60, check=True)
        return out.stdout

    zsh = script("--show-completion", "zsh")
    assert zsh.startswith("#compdef jaxdiff") and "complete_zsh" in zsh and "COMPREPLY" not in zsh
    assert script("--show-completion=zsh") == zsh
    fish = script("--show-completion", "fish")
    assert "complete --command jaxdiff" in fish and "complete_fish" in fish
    bash_script = script("--show-completion")  # no shell named: the one it was started from
    assert "COMPREPLY" in bash_script and "complete_bash" in bash_script
    assert subprocess.run([bash, "-n"], input=bash_script, text=True, check=False).returncode == 0  # valid bash
    if shutil.which("zsh"):  # not in every CI image: the checks above say it is zsh's script
        assert subprocess.run([shutil.which("zsh") or "zsh", "-n"], input=zsh, text=True, check=False).returncode == 0


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("jaxdiff ch", 1, ["check"]),
        ("jaxdiff jvp --dtype ", 3, ["float32", "float64", "complex64", "complex128"]),
        ("jaxdiff jacobian --mode ", 3, ["fwd", "rev", "auto"]),
        ("jaxdiff hvp --mode rev-", 3, ["rev-fwd", "rev-rev"]),
        ("jaxdiff check --output-format ", 3, ["text", "json", "github"]),
    ],
)
def test_completion_completes_commands_and_choices_without_jax(words: str, cword: int, expected: list[str]) -> None:
    """What bash asks the completion script for, answered by the installed command: and never by importing JAX."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\nsys.argv = ['jaxdiff']\nfrom jaxdiff_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('JAX IMPORTED' if 'jax' in sys.modules or 'numpy' in sys.modules else 'NO JAX')\n"
    )
    env = dict(os.environ, _JAXDIFF_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    *completions, last = out.stdout.splitlines()
    assert completions == expected and last == "NO JAX", out.stdout + out.stderr


# ----------------------------------------------------------------------------- polish


def test_the_choices_in_help_are_the_loaders(cli: Cli) -> None:
    from jaxdiff_cli import helptext as cli_module
    from jaxdiff_cli.dtypes import DTYPES
    from jaxdiff_cli.inputs.spec import DEVICES
    from jaxdiff_cli.ops import OPS

    assert cli_module.DTYPE_CHOICES == DTYPES and cli_module.DEVICE_CHOICES == DEVICES
    flags = cli_module.FLAGS  # the modes and operations are the operation table's, read by --help and the loader
    assert (flags["jacobian.mode"].choices, flags["hvp.mode"].choices) == (OPS["jacobian"].modes, OPS["hvp"].modes)
    assert flags["taylor.mode"].choices == OPS["taylor"].modes == OPS["derivative"].modes
    from jaxdiff_cli.engine.sparse import KINDS
    from jaxdiff_cli.output.reports import OUTPUT_FORMATS

    assert flags["sparsity.op"].choices == KINDS and cli_module.OUTPUT_FORMAT_CHOICES == OUTPUT_FORMATS
    text = cli("jacobian", "--help").stdout
    assert "[float32|float64|complex64|complex128]" in text and "[cpu|gpu|tpu|auto]" in text and "[fwd|rev|auto]" in text
    assert "[fwd-rev|rev-fwd|rev-rev]" in cli("hvp", "--help").stdout


def test_exact_zeros_are_never_minus_zero_and_one_entry_is_singular(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    ran = cli("grad", "-f", "jnp.sum(x * 0.0) + 0.0 * jnp.sum(-x)", "-p", "x=[1.0, -2.0]")
    assert ran.exit_code == ExitCode.OK and "-0." not in ran.stdout and "[0. 0.]" in ran.stdout
    spec = spec_file("function: x**2\nprimals: {x: 3.0}\nexpect: {value: 9.0}\n", "one.yaml")
    text = cli("check", spec).stdout
    assert "1 entry " in text and "1 entries" not in text


# ----------------------------------------------------------------------------- pre-commit and CI recipes


def test_the_pre_commit_hook_runs_jaxdiff_check_on_spec_files(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    import shlex

    import yaml

    from ..conftest import ROOT

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "jaxdiff-check" and hook["language"] == "python" and "yaml" in hook["types"]
    assert re.search(hook["files"], "specs/poly.yaml") and re.search(hook["files"], "pkg/spec/a.yml")
    assert not re.search(hook["files"], ".github/workflows/ci.yaml")
    program, *args = shlex.split(hook["entry"]) + hook["args"]
    assert program == "jaxdiff"
    wrong = spec_file(WRONG, "wrong.yaml")
    assert cli(*args, CONFIGS / "seed000_poly.yaml").exit_code == ExitCode.OK  # pre-commit appends the files it checks
    assert cli(*args, CONFIGS / "seed000_poly.yaml", wrong).exit_code == ExitCode.CHECK_FAILED


def test_the_readme_ci_recipes_are_valid_yaml_with_commands_that_run(cli: Cli, tmp_path: Path) -> None:
    import shlex

    import yaml

    from ..conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### In CI", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    docs = [yaml.safe_load(b) for b in blocks]
    github = next(d for d in docs if "jobs" in d)
    gitlab = next(d for d in docs if any(isinstance(v, dict) and "script" in v for v in d.values()))
    steps = [s for job in github["jobs"].values() for s in job["steps"]]
    assert any("actions/cache" in s.get("uses", "") for s in steps)
    assert any("~/.cache/jaxdiff" in str(s.get("with", {}).get("path", "")) for s in steps)
    (job,) = [v for v in gitlab.values() if isinstance(v, dict) and "script" in v]
    assert job["artifacts"]["reports"]["junit"] and job["cache"]["paths"]
    commands = [line for s in steps for line in str(s.get("run", "")).splitlines()] + job["script"]
    # the cache is sealed with a CI secret (GitHub: the step's env; GitLab: a masked variable, said beside it)
    assert any("secrets.JAXDIFF_CACHE_KEY" in str(s.get("env", {}).get("JAXDIFF_CACHE_KEY", "")) for s in steps)
    assert "JAXDIFF_CACHE_KEY" in section.split("GitLab CI", 1)[1]
    assert not any("-m jaxdiff_cli" in c for c in commands)  # the script: python -m would import the checkout's modules
    checks = [shlex.split(c) for c in commands if c.strip().startswith("jaxdiff check")]
    assert len(checks) >= 2
    for words in checks:  # each runs, on a config for the user's specs and into tmp_path for its files
        words = words[: words.index(">")] if ">" in words else words
        words = [str(CONFIGS / "seed000_poly.yaml") if "specs/" in w else w for w in words]
        words = [str(tmp_path / Path(w).name) if w.endswith(".xml") else w for w in words]
        ran = cli(*words[1:])
        assert ran.exit_code == ExitCode.OK, (words, ran.stderr)


def test_check_quiet_prints_no_table_but_still_says_why_it_failed(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("function: x\nprimals: {x: [1.0, abc]}\n")
    good = tmp_path / "good.yaml"
    good.write_text("function: x**2\nprimals: {x: [1.0]}\n")
    ran = cli("check", bad, good, "-q")
    assert ran.exit_code == ExitCode.BAD_INPUT and ran.stdout == ""
    assert ran.stderr.count("\n") == 1 and "bad.yaml: primals.x[1]: 'abc' is not a number" in ran.stderr
    ran = cli("check", good, "-q")
    assert ran.exit_code == ExitCode.OK and ran.stdout == "" and ran.stderr == ""


# ----------------------------------------------------------------------------- CI logs (issue 22.5)

# value[1] is 4; the expectation is 1e-8 off, with no tolerance: 7 digits would show 4 against 4.
CLOSE = """\
function: "lambda x: x**2"
primals:
  x: [1.0, 2.0]
dtype: float64
expect:
  rtol: 0
  atol: 0
  value: [1.0, 4.00000001]
  jacobian.x: [[2.0, 0.0], [0.0, 4.0]]
"""


def test_off_a_terminal_each_row_of_the_check_table_is_one_line(
    cli: Cli, tmp_path: Path, spec_file: SpecFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI log is no terminal: at 80 columns a row used to fold over 3 to 8 lines."""
    monkeypatch.setenv("COLUMNS", "80")
    folder = tmp_path / ("a-rather-long-folder-name-as-ci-checkouts-have-" * 2)
    folder.mkdir()
    spec = spec_file(CLOSE, "close.yaml", folder)
    ran = cli("check", spec, "--output-format", "text")
    assert ran.exit_code == ExitCode.CHECK_FAILED, ran.stderr
    names = [f["name"] for f in cli("check", spec, "--json").json()["specs"][0]["checks"]]
    lines = ran.stdout.splitlines()
    # the spec's line, the header, one line per check, the count: nothing folded
    assert len(lines) == 1 + 1 + len(names) + 1, ran.stdout
    assert lines[0] == f"FAIL  {spec}"
    for name, line in zip(names, lines[2:]):
        assert line.split()[0] in ("ok", "FAIL", "skip") and name in line, (name, line)
    assert max(len(line) for line in lines) > 80  # the long rows were kept whole, not folded to 80
    failed = next(line for line in lines if "expect value" in line)
    assert "1 of 2 entries outside tolerance" in failed and "value[1]" in failed


def test_a_failure_shows_as_many_digits_as_tell_ad_and_reference_apart(cli: Cli, spec_file: SpecFile) -> None:
    spec = spec_file(CLOSE, "close.yaml")
    table = cli("check", spec).stdout
    row = next(line for line in table.splitlines() if "expect value" in line)
    assert row.split()[-3:-1] == ["4", "4.00000001"], row  # AD, reference (7 digits: 4 and 4)
    github = cli("check", spec, "--output-format", "github").stdout
    assert "worst value[1]: AD 4, reference 4.00000001 (gap allowed " in github


def test_numbers_tells_two_floats_apart_with_no_more_digits_than_needed() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from jaxdiff_cli.output.reports import numbers

    assert numbers(4.0, 4.00000001) == ("4", "4.00000001")
    assert numbers(float(np.float32(4.0000005)), 4.0) == ("4.0000005", "4")  # a float32 AD value, widened
    assert numbers(0.1 + 0.2, 0.3) == ("0.30000000000000004", "0.3")  # 17 digits where 16 are not enough
    assert numbers(1.5, 2.5) == ("1.5", "2.5") and numbers(-0.0, 0.0) == ("0", "0")
    assert numbers(1.0 / 3, 1.0) == ("0.3333333", "1")  # 7 digits when they already differ
    assert numbers(float("nan"), 1.0) == ("nan", "1")

    @given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
    def distinct(a: float, b: float) -> None:
        shown = numbers(a, b)
        assert (shown[0] == shown[1]) == (a == b), (a, b, shown)
        for text, value in zip(shown, (a, b)):  # each is its value, to 7 digits at least
            assert math.isclose(float(text), value, rel_tol=1e-6, abs_tol=1e-300), (text, value)

    distinct()

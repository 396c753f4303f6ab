"""The pytest plugin (``pytest --jaxdiff``): specs as items, one per case and check, in pytest's own run.

Each test runs pytest in this process (pytester), so JAX is imported once; the runs are few.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import jaxdiff_cli


@pytest.fixture(autouse=True, scope="module")
def _imported_before(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Everything a check imports, imported out here first: pytester forgets the modules an inner run
    imports, and NumPy's and jaxlib's compiled modules cannot be imported twice in one process."""
    for module in pkgutil.walk_packages(jaxdiff_cli.__path__, "jaxdiff_cli."):
        importlib.import_module(module.name)
    from jaxdiff_cli.checks.check import Settings, check_spec
    from jaxdiff_cli.inputs.cases import load_spec
    from jaxdiff_cli.inputs.spec import Overrides

    spec = Path(tmp_path_factory.mktemp("warm")) / "good.yaml"
    spec.write_text(GOOD)
    assert check_spec(load_spec(str(spec), Overrides()), Settings()).passed


GOOD = """\
function: "lambda x: jnp.sum(x**2)"
primals:
  x: [1.0, 2.0]
expect:
  value: 5.0
  grad.x: [2.0, 4.0]
"""
# grad.x is wrong at [1] (4, not 4.5): the failing key is on line 6
WRONG = GOOD.replace("[2.0, 4.0]", "[2.0, 4.5]")
CASES = """\
function: "lambda x: x * 3"
cases:
  - name: one
    primals: {x: [1.0]}
    expect: {value: [3.0]}
  - name: two
    primals: {x: [1.0, 2.0]}
    expect: {value: [3.0, 6.0]}
"""


def test_off_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", good=GOOD)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes()  # nothing collected: the YAML file is no test without --jaxdiff
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.slow
def test_passing_and_failing_specs_with_k_x_and_junit_xml(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", good=GOOD, wrong=WRONG, cases=CASES)
    result = pytester.runpytest_inprocess("--jaxdiff", "-v", "--junit-xml=report.xml")
    # good: spec, expect[value], expect[grad.x], fwd, rev, adjoint, hvp, hessian, finite; wrong: the same, one
    # failing; cases: per case spec, expect[value], fwd, rev, adjoint, finite, and hvp, hessian skipped (f is not scalar)
    result.assert_outcomes(passed=9 + 8 + 2 * 6, failed=1, skipped=2 * 2)
    result.stdout.fnmatch_lines(
        [
            "*cases.yaml::two::ad_vs_fd?fwd? PASSED*",
            "*wrong.yaml::expect?grad.x? FAILED*",
            "wrong.yaml:6: expect grad.x: 1 of 2 entries outside tolerance; worst grad.x?1?: AD 4, reference 4.5*",
        ]
    )
    root = ET.parse(pytester.path / "report.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("34", "1", "4")
    names = {(c.get("classname"), c.get("name")) for c in suite.iter("testcase")}
    assert ("wrong.yaml", "expect[grad.x]") in names and ("cases.yaml.two", "finite") in names

    # -k picks items by name, -x stops at the first failure
    result = pytester.runpytest_inprocess("--jaxdiff", "-k", "expect and not cases")
    result.assert_outcomes(passed=3, failed=1)
    result = pytester.runpytest_inprocess("--jaxdiff", "-x", "wrong.yaml", "good.yaml")
    result.assert_outcomes(passed=2, failed=1)  # wrong.yaml's spec and expect[value] pass, expect[grad.x] fails: it stops


def test_specs_named_by_the_ini_option_with_a_spec_that_cannot_be_checked(pytester: pytest.Pytester) -> None:
    """jaxdiff_specs turns the plugin on and names the specs; a plain `pytest` finds them beside the tests."""
    pytester.makeini("[pytest]\ntestpaths = tests\njaxdiff_specs =\n    specs/*.yaml\n")
    pytester.mkdir("tests")
    pytester.makepyfile(**{"tests/test_unit": "def test_unit():\n    assert True\n"})
    specs = pytester.mkdir("specs")
    (specs / "good.yaml").write_text(GOOD)
    (specs / "broken.yaml").write_text("function: x\nprimals:\n  x: [1.0, abc]\n")
    (pytester.path / "ci.yaml").write_text("jobs: {}\n")  # YAML that is no spec: not collected
    result = pytester.runpytest_inprocess("-rfs")
    # the unit test, good.yaml's 9 items; broken.yaml fails once, as its spec item (a bad value is no
    # derivative check's failure), and its 6 checks skip, pointing at it
    result.assert_outcomes(passed=1 + 9, failed=1, skipped=6)
    result.stdout.fnmatch_lines(["*broken.yaml:3: primals.x?1?: 'abc' is not a number*(exit status 3 in jaxdiff check)*"])
    result.stdout.fnmatch_lines(["FAILED specs/broken.yaml::spec*"])
    result.stdout.fnmatch_lines(["SKIPPED ?6?*: the spec could not be checked: see specs/broken.yaml::spec"])
    assert "ci.yaml" not in result.stdout.str()
    result = pytester.runpytest_inprocess("tests")  # paths given: only those
    result.assert_outcomes(passed=1)


NOT_SPECS = {
    ".gitlab-ci.yml": "stages: [test]\ntest:\n  script: make test\n",
    "docker-compose.yml": "services:\n  web:\n    image: python\n",
    "notes.yaml": "# function: only in a comment\nsteps:\n  - function: indented, not top-level\n",
}


def test_yaml_files_that_are_no_specs_are_left_out_and_counted(pytester: pytest.Pytester) -> None:
    """--jaxdiff alone meets every YAML file: those without a top-level function: (or cases:) key are no specs."""
    for name, text in NOT_SPECS.items():
        (pytester.path / name).write_text(text)
    (pytester.path / "flow.yaml").write_text("{function: 'lambda x: x * 2', primals: {x: 1.0}}\n")  # a spec all the same
    (pytester.path / "quoted.yml").write_text('"function": "lambda x: jnp.sin(x)"\nprimals: {x: 1.0}\n')
    result = pytester.runpytest_inprocess("--jaxdiff", "-q")
    result.assert_outcomes(passed=2 * 7)  # flow and quoted: spec, fwd, rev, adjoint, hvp, hessian, finite
    result.stdout.fnmatch_lines(
        ["jaxdiff: 3 YAML files without a top-level function: key, not specs: .gitlab-ci.yml, docker-compose.yml, notes.yaml"]
    )
    # named on the command line, a file is a spec, and a bad one says why
    result = pytester.runpytest_inprocess("--jaxdiff", "docker-compose.yml", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED docker-compose.yml::spec - docker-compose.yml:1: services: unknown key*"])
    assert "not specs" not in result.stdout.str()


def test_a_spec_that_cannot_be_checked_still_fails_when_its_spec_item_is_deselected(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", broken="function: x\nprimals:\n  x: [1.0, abc]\n")
    result = pytester.runpytest_inprocess("--jaxdiff", "-k", "hvp or hessian", "-rfs")
    result.assert_outcomes(failed=1, skipped=1, deselected=5)  # never all skipped: the first that runs fails
    result.stdout.fnmatch_lines(["FAILED broken.yaml::hvp*"])


VECTOR = "function: 'lambda x: jnp.sin(x)'\nprimals: {x: [1.0, 2.0]}\n"
ORDER = "function: 'lambda x: jnp.sin(x)'\nprimals: {x: 0.5}\norder: 3\n"
HOLOMORPHIC = (
    "function: 'lambda z: jnp.sum(z**2)'\nprimals: {z: {re: [1, 2], im: [0.5, -1]}}\ndtype: complex64\nholomorphic: true\n"
)


@pytest.mark.slow
def test_skips_say_why_and_order_and_holomorphic_specs_get_their_items(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", vector=VECTOR, order=ORDER, holomorphic=HOLOMORPHIC)
    result = pytester.runpytest_inprocess("--jaxdiff", "-v", "-rs")
    result.stdout.fnmatch_lines(
        [
            "holomorphic.yaml::holomorphic PASSED*",
            "order.yaml::higher_order PASSED*",
        ]
    )
    out = result.stdout.str()
    assert "vector.yaml::higher_order" not in out and "vector.yaml::holomorphic" not in out  # only where they apply
    for line in [
        "hvp does not apply to this spec: the output is not a scalar (shape (2,)): hvp and hessian need one",
        "hessian does not apply to this spec: the output is not a scalar (shape (2,))",
        "second derivatives: not compared for complex values (hessian, hvp)",
    ]:
        assert line in out, line
    assert "does not apply to this spec\n" not in out  # every skip gives its reason
    # vector: spec, fwd, rev, adjoint, finite + hvp, hessian skipped; order: spec, fwd, rev, adjoint, hvp, hessian,
    # higher_order, finite; holomorphic: spec, fwd, rev, adjoint, holomorphic, finite + hvp, hessian skipped
    result.assert_outcomes(passed=5 + 8 + 6, skipped=2 + 2)


def test_bad_paths_and_data_files_fail_their_spec_and_the_others_run(pytester: pytest.Pytester) -> None:
    """Issue 19.3 / 19.6 through the plugin: a NUL in plot.file, a FIFO as an expected value and an .npz
    declaring 4 GiB of text each fail as their spec (exit status 3), at once; the good spec still passes."""
    import os
    import struct
    import zipfile

    pytester.makefile(".yaml", good=GOOD)
    (pytester.path / "nul.yaml").write_text('function: x * 2\nprimals: {x: [1.0]}\nplot: {file: "a\\0.png"}\n')
    os.mkfifo(pytester.path / "fifo.npy")
    (pytester.path / "fifo.yaml").write_text("function: x * 2\nprimals: {x: [1.0]}\nexpect: {value: {file: fifo.npy}}\n")
    header = repr({"descr": "<U67108864", "fortran_order": False, "shape": (17,)}).encode() + b"\n"
    with zipfile.ZipFile(pytester.path / "text.npz", "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    (pytester.path / "text.yaml").write_text("function: x * 2\nprimals: {x: {file: text.npz, key: x}}\n")
    result = pytester.runpytest_inprocess("--jaxdiff", "-rf", "-k", "spec or value")
    assert result.duration < 60  # the FIFO is not waited on
    result.stdout.fnmatch_lines(["nul.yaml:3: plot.file: 'a\\x00.png' holds a NUL byte*(exit status 3 in jaxdiff check)*"])
    result.stdout.fnmatch_lines(["fifo.yaml:3: expect.value.file: not a regular file:*FIFO*(exit status 3 in jaxdiff check)*"])
    result.stdout.fnmatch_lines(["text.yaml:2: primals.x.file: text.npz?x? holds text (<U67108864) data, not numbers*"])
    assert "internal error" not in result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 3 and outcomes["passed"] >= 1


# Three failures in two specs: wrong_two.yaml's expect[value] and expect[grad.x], and case `two` of
# cases_bad.yaml's expect[value]. Their ids carry brackets, which pytest >= 9.2 reads back from its cache
# as parameters (pytest-dev/pytest#15045).
WRONG_TWO = WRONG.replace("value: 5.0", "value: 6.0")
CASES_BAD = CASES.replace("value: [3.0, 6.0]", "value: [3.0, 7.0]")
FAILURES = ["wrong_two.yaml::expect[value]", "wrong_two.yaml::expect[grad.x]", "cases_bad.yaml::two::expect[value]"]


@pytest.mark.slow
def test_last_failed_and_failed_first_rerun_exactly_the_failures(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", good=GOOD, wrong_two=WRONG_TWO, cases_bad=CASES_BAD)
    everything = 9 + 9 + 2 * 6  # good, wrong_two, and the two cases of cases_bad (hvp, hessian skipped there)
    result = pytester.runpytest_inprocess("--jaxdiff", "-p", "cacheprovider")
    result.assert_outcomes(passed=everything - 3, failed=3, skipped=2 * 2)
    cached = json.loads((pytester.path / ".pytest_cache/v/cache/lastfailed").read_text())
    assert sorted(cached) == sorted(FAILURES)

    result = pytester.runpytest_inprocess("--jaxdiff", "-p", "cacheprovider", "--lf", "-v")
    outcomes = result.parseoutcomes()  # good.yaml is not even collected: its items are not deselected, they are absent
    assert outcomes["failed"] == 3 and "passed" not in outcomes and "skipped" not in outcomes
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 3 failures (skipped 1 file)"])
    ran = [line.split(" ")[0] for line in result.stdout.lines if " FAILED" in line and "::" in line and line[0] != "F"]
    assert sorted(ran) == sorted(FAILURES)

    result = pytester.runpytest_inprocess("--jaxdiff", "-p", "cacheprovider", "--ff", "-v")
    result.assert_outcomes(passed=everything - 3, failed=3, skipped=2 * 2)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 3 failures first"])
    ran = [line.split(" ")[0] for line in result.stdout.lines if line.endswith("%]")]
    assert sorted(ran[:3]) == sorted(FAILURES) and len(ran) == everything + 2 * 2


BROKEN = "function: x\nprimals:\n  x: [1.0, abc]\n"


@pytest.mark.slow
def test_xdist_counts_are_the_serial_counts_and_a_spec_runs_on_one_worker(pytester: pytest.Pytester) -> None:
    """pytest-xdist (the real one, a dev dependency): each worker collects every item, so a broken spec's error
    must be shown by the same item everywhere, and a spec's items go to one worker, which checks it once."""
    pytester.makefile(".yaml", good=GOOD, wrong=WRONG, cases=CASES, broken=BROKEN)
    (pytester.path / "docker-compose.yml").write_text(NOT_SPECS["docker-compose.yml"])  # left out by every worker
    serial = pytester.runpytest_inprocess("--jaxdiff").parseoutcomes()
    # good 9, wrong 8 + 1 failed, cases 2 * 6 + 2 * 2 skipped, broken: its spec item fails, 6 skip
    assert serial == {"passed": 9 + 8 + 2 * 6, "failed": 1 + 1, "skipped": 2 * 2 + 6}
    result = pytester.runpytest_inprocess("--jaxdiff", "-n", "2", "-v")
    assert result.parseoutcomes() == serial
    workers: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        if line.startswith("[gw") and ".yaml::" in line:
            workers.setdefault(line.split()[-1].split("::")[0], set()).add(line.split()[0])
    assert sorted(workers) == ["broken.yaml", "cases.yaml", "good.yaml", "wrong.yaml"]
    assert all(len(w) == 1 for w in workers.values()), workers
    result.stdout.fnmatch_lines(["jaxdiff: 1 YAML file without a top-level function: key, not specs: docker-compose.yml"])

    # Where the spec items are deselected and xdist's own scheduler spreads a spec's items (worksteal), the
    # broken spec still fails once, by the item a serial run picks (test above: the first selected).
    result = pytester.runpytest_inprocess("--jaxdiff", "-k", "broken and not spec", "-n", "2", "--dist", "worksteal", "-rf")
    assert (result.parseoutcomes()["failed"], result.parseoutcomes()["skipped"]) == (1, 5)
    result.stdout.fnmatch_lines(["FAILED broken.yaml::ad_vs_fd?fwd?*"])

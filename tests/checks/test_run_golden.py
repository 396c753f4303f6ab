"""`jaxdiff run` over cases, and golden values recorded with `check --update`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from jaxdiff_cli.errors import ExitCode

from ..conftest import CONFIGS, Cli

CASES = """\
# shared defaults
function: "jnp.sum(x**3) * w"
primals: {x: [1.0, 2.0], w: 2.0}
run: [eval, grad]
cases:
  - name: base
  - name: other point
    primals: {x: [3.0], w: 1.0}
    run: [grad, {hvp: {mode: rev-rev}}]
    tangents: [1.0]
  - name: f64
    dtype: float64
    run: [{jacobian: {mode: rev, chunk_size: 1}}]
"""


def test_run_cases_one_json_document(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "cases.yaml"
    spec.write_text(CASES)
    ran = cli("run", spec, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    doc = ran.json()
    assert doc["command"] == "run" and [c["name"] for c in doc["cases"]] == ["base", "other point", "f64"]
    base, other, f64 = doc["cases"]
    assert [r["op"] for r in base["results"]] == ["eval", "grad"]
    assert base["results"][1]["outputs"]["grad.x"]["data"] == [6.0, 24.0]  # 3 x² w
    assert other["results"][1]["outputs"]["hvp.x"]["data"] == [18.0]  # 6 x w v
    assert other["results"][1]["info"]["mode"] == "rev-rev"
    assert f64["dtype"] == "float64" and f64["results"][0]["outputs"]["jacobian.x"]["dtype"] == "float64"
    assert f64["results"][0]["info"]["chunk_size"] == 1


def test_run_saves_every_case(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "cases.yaml"
    spec.write_text(CASES)
    assert cli("run", spec, "-o", tmp_path / "all.npz", "-q").exit_code == ExitCode.OK
    with np.load(tmp_path / "all.npz") as f:
        assert "other point/hvp[mode=rev-rev]/hvp.x" in f.files and "base/eval/value" in f.files


def test_run_errors(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("function: x\nprimals: {x: 1.0}\n")
    ran = cli("run", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "run: which operations to run?" in ran.stderr
    spec.write_text("function: x\nprimals: {x: 1.0}\nrun: [jvpp]\n")
    assert "unknown operation 'jvpp' (did you mean 'jvp'?)" in cli("run", spec).stderr
    spec.write_text(
        "function: x\nprimals: {x: 1.0}\nrun: [eval]\ncases:\n"
        "  - name: a\n    primals: {x: [1, 2]}\n    tangents: [1]\n    run: [jvp]\n  - name: b\n"
    )
    ran = cli("run", spec, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT  # case a fails, case b still runs
    cases = ran.json()["cases"]
    assert "error" in cases[0] and "cases[0]: tangents" in cases[0]["error"]["message"]
    assert cases[1]["results"][0]["outputs"]["value"]["data"] == 1.0
    ran = cli("jvp", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "holds several cases" in ran.stderr


@pytest.mark.slow
def test_check_update_records_golden_values_and_keeps_the_rest(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "g.yaml"
    spec.write_text(
        "# my comment\nfunction: jnp.sum(jnp.sin(x)) * 2\nprimals:\n  x: {linspace: [0, 1, 100]}  # 100 points\n"
        "tangents: {ones: [100]}\nexpect:\n  rtol: 1.0e-6\n# before description\ndescription: kept\n"
    )
    ran = cli("check", spec, "--update")
    assert ran.exit_code == ExitCode.OK, ran.stdout
    text = spec.read_text()
    assert text.startswith("# my comment\n") and "# 100 points" in text and "# before description\ndescription: kept\n" in text
    data = yaml.safe_load(text)
    assert set(data["expect"]) >= {"value", "jvp", "vjp.x", "grad.x", "hessian.x.x", "hvp.x", "jacobian.x", "rtol", "recorded"}
    assert data["expect"]["rtol"] == 1e-6 and data["expect"]["recorded"]["dtype"] == "float32"
    assert data["expect"]["hessian.x.x"] == {"file": "g.golden.npz", "key": "hessian.x.x"}  # 10000 entries: sidecar
    with np.load(tmp_path / "g.golden.npz") as f:
        np.testing.assert_allclose(np.diag(f["hessian.x.x"]), -2 * np.sin(np.linspace(0, 1, 100)), rtol=1e-5, atol=1e-6)
    assert cli("check", spec).exit_code == ExitCode.OK

    # The derivative changes: the recorded values catch it, and say the environment changed too.
    data["expect"]["recorded"]["jax"] = "0.0.1"
    spec.write_text(yaml.safe_dump(data).replace("jnp.sum(jnp.sin(x)) * 2", "jnp.sum(jnp.sin(x)) * 2.001"))
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    failed = [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]
    assert failed and all(c["name"].startswith("expect ") for c in failed)
    assert "recorded in another environment: jax 0.0.1 -> " in failed[0]["detail"]


def test_every_config_can_be_recorded(cli: Cli, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(CONFIGS, tmp_path / "configs")
    spec = tmp_path / "configs" / "seed004_mlp.yaml"
    assert cli("check", spec, "--update", "-q").exit_code == ExitCode.OK
    assert cli("check", spec, "-q").exit_code == ExitCode.OK


# A spec as people write them: comments above, beside and between entries, a flow entry with its own
# tolerance, and comment lines before the next top-level key. value and grad.x[1] are wrong (5 and 4).
COMMENTED = """\
# sum of squares
function: "lambda x: jnp.sum(x**2)"   # f
primals:
  x: [1.0, 2.0]
tangents: {x: [1.0, 0.0]}
expect:
  # the value at x
  value: 6.0     # was 6 before the fix
  grad.x: [2.0, 4.5]   # by hand
  jvp: {value: 2.0, rtol: 1.0e-3}  # an entry of its own
  rtol: 1.0e-5
# the dtype, last
dtype: float32
"""


def test_check_update_records_shows_old_to_new_keeps_comments_and_exits_0(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(COMMENTED)
    ran = cli("check", "--update", spec)
    assert ran.exit_code == 0, ran.stdout + ran.stderr  # recorded: an update script under `set -e` goes on
    out = " ".join(ran.stdout.split())
    assert "expect value: value 6 → 5 (1 of 1 entry changed)" in out
    assert "expect grad.x: grad.x[1] 4.5 → 4 (1 of 2 entries changed)" in out
    assert "expect vjp.x: added [2.0, 4.0]" in out and "1 unchanged" in out and "FAIL" not in out
    text = spec.read_text()
    recorded = next(line for line in text.splitlines() if line.startswith("  recorded: "))
    assert yaml.safe_load(recorded)["recorded"]["dtype"] == "float32"
    # Byte for byte: the changed values in place (their comments kept), the new entries before the
    # tolerance, the recorded: note last in the block, every other line as it was.
    assert text == (
        COMMENTED.replace("value: 6.0", "value: 5.0")
        .replace("[2.0, 4.5]", "[2.0, 4.0]")
        .replace(
            "  rtol: 1.0e-5\n",
            "  vjp.x: [2.0, 4.0]\n  jacobian.x: [2.0, 4.0]\n  hessian.x.x: [[2.0, 0.0], [0.0, 2.0]]\n  hvp.x: [2.0, 0.0]\n"
            f"  rtol: 1.0e-5\n{recorded}\n",
        )
    )
    assert cli("check", spec).exit_code == 0  # what it recorded passes
    ran = cli("check", "--update", spec)  # and a second update has nothing to record: the file stays
    assert ran.exit_code == 0 and "nothing to record: 7 unchanged" in ran.stdout and spec.read_text() == text


CASES_COMMENTED = """\
function: "lambda x: x * 3"
expect: {rtol: 1.0e-4}  # shared by the cases
cases:
  - name: one   # the first
    primals: {x: [1.0]}
    expect:
      value: [4.0]  # wrong: 3
  - name: two
    primals: {x: [1.0, 2.0]}
"""


def test_check_update_records_every_case_of_a_spec_with_cases(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "cases.yaml"
    spec.write_text(CASES_COMMENTED)
    ran = cli("check", "--update", spec, "--json")
    assert ran.exit_code == 0, ran.stdout
    reports = ran.json()["specs"]
    assert [r["passed"] for r in reports] == [True, True]
    assert reports[0]["changes"][0] == "expect value: value[0] 4 → 3 (1 of 1 entry changed)"
    assert "expect value: added [3.0, 6.0]" in reports[1]["changes"]
    data = yaml.safe_load(spec.read_text())
    one, two = data["cases"]
    assert one["expect"]["value"] == [3.0] and one["expect"]["jacobian.x"] == [[3.0]]
    # case two shared the top-level block: it gets its own, with the shared tolerance, and the shared one stays
    assert two["expect"]["value"] == [3.0, 6.0] and two["expect"]["rtol"] == 1e-4 and data["expect"] == {"rtol": 1e-4}
    text = spec.read_text()
    assert text.startswith(CASES_COMMENTED.split("    expect:")[0].replace("value: [4.0]", "value: [3.0]"))
    assert "  - name: one   # the first\n" in text and "value: [3.0]  # wrong: 3\n" in text
    ran = cli("check", spec, "--json")
    assert ran.exit_code == 0 and len(ran.json()["specs"]) == 2


def test_check_update_says_what_it_could_not_record_and_exits_1(cli: Cli, tmp_path: Path) -> None:
    """A value kept in the user's own file is not rewritten; a spec on stdin cannot be."""
    np.save(tmp_path / "mine.npy", np.array([2.0, 4.5], np.float32))
    spec = tmp_path / "s.yaml"
    text = 'function: "lambda x: jnp.sum(x**2)"\nprimals: {x: [1.0, 2.0]}\nexpect:\n  grad.x: {file: mine.npy}\n  value: 6.0\n'
    spec.write_text(text)
    ran = cli("check", "--update", spec)
    assert ran.exit_code == 1
    out = " ".join(ran.stdout.split())
    assert "not recorded: its value is kept in mine.npy, which --update does not rewrite" in out
    assert "expect value: value 6 → 5" in out  # the rest is recorded
    assert np.load(tmp_path / "mine.npy").tolist() == [2.0, 4.5] and "value: 5.0" in spec.read_text()
    ran = cli("check", "--update", "-", input=text)
    assert ran.exit_code == 2 and "--update rewrites spec files" in ran.stdout + ran.stderr


@pytest.mark.slow
def test_only_update_imports_ruamel(tmp_path: Path) -> None:
    """ruamel.yaml (~0.1 s to import) is paid for by --update alone: check, and every other command, never import it."""
    import subprocess
    import sys

    spec = tmp_path / "s.yaml"
    spec.write_text(COMMENTED)
    code = (
        "import sys\nfrom jaxdiff_cli.cli import main\nsys.argv = ['jaxdiff', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint('RUAMEL' if 'ruamel.yaml' in sys.modules else 'NO RUAMEL')\n"
    )
    for args, want in ((["check", "-q", str(spec)], "NO RUAMEL"), (["check", "--update", "-q", str(spec)], "RUAMEL")):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert out.stdout.splitlines()[-1] == want, out.stdout + out.stderr


def test_check_update_of_a_case_that_uses_a_wrong_shared_expect(cli: Cli, tmp_path: Path) -> None:
    # The case's own block began with the shared tolerances only, so the shared wrong entry it was
    # checked against was missing there: KeyError, exit 70, the file half rewritten (new-user report).
    spec = tmp_path / "shared.yaml"
    spec.write_text(
        'function: "lambda x: jnp.sum(x * x)"\nexpect:\n  grad.x: [1.0, 1.0]\n  rtol: 1.0e-4\n'
        "cases:\n  - name: small\n    primals: {x: [0.5, 1.0]}\n"
    )
    ran = cli("check", "--update", spec)
    assert ran.exit_code == ExitCode.OK, ran.stdout + ran.stderr
    assert "expect grad.x: grad.x[1] 1 → 2 (1 of 2 entries changed)" in " ".join(ran.stdout.split())
    data = yaml.safe_load(spec.read_text())
    assert data["cases"][0]["expect"]["grad.x"] == [1.0, 2.0] and data["cases"][0]["expect"]["rtol"] == 1e-4
    assert data["expect"]["grad.x"] == [1.0, 1.0]  # the shared block is the other cases' still
    assert cli("check", spec, "-q").exit_code == ExitCode.OK

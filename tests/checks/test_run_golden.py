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

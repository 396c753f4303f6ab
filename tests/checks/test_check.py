"""`jaxdiff check` has teeth: wrong derivative rules are flagged, right ones pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.checks import fd
from jaxdiff_cli.errors import ExitCode

from ..conftest import ASSETS, CONFIGS, Cli

WRONG = [
    # (function, primal, what must fail)
    ("sin_factor", "[0.3, -1.2, 2.0]", "jacobian fwd vs FD"),
    ("exp_sign", "[0.1, 0.5]", "jacobian fwd vs FD"),
    ("matvec_transposed", "[1.0, -2.0, 0.5]", "jacobian fwd vs FD"),
    ("square_one_entry", "[1.0, 2.0, 3.0, 4.0]", "jacobian fwd vs FD"),
    ("tanh_bad_reverse", "[0.3, -0.7, 1.1]", "jacobian rev vs FD"),
    ("scale_bad_reverse_one_entry", "[1.0, 2.0, 3.0, 4.0, 5.0]", "jacobian rev vs FD"),
    ("big_sum_wrong", "{random: normal, shape: [10, 10], seed: 3}", "jvp vs FD"),
]
RIGHT = [
    ("softplus", "[-3.0, 0.0, 2.5]", "float32"),
    ("tanh_good", "[0.3, -0.7, 1.1]", "float32"),
    ("ill_scaled", "[1.0e-5, 3.0]", "float64"),
    ("ill_scaled", "[1.0e-5, 3.0]", "float32"),
    ("near_kink", "[0.0, 1.0e-4]", "float64"),
    ("near_kink", "[0.0, 1.0e-4]", "float32"),
]


def teeth_spec(tmp_path: Path, fn: str, primal: str, dtype: str = "float32") -> Path:
    path = tmp_path / f"{fn}_{dtype}.yaml"
    shutil.copy(ASSETS / "teeth.py", tmp_path / "teeth.py")  # a spec names files inside its folder
    path.write_text(f"function: teeth.py:{fn}\nprimals:\n  x: {primal}\ndtype: {dtype}\n")
    return path


@pytest.mark.parametrize(("fn", "primal", "failing"), WRONG, ids=[w[0] for w in WRONG])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wrong_rules_are_flagged(cli: Cli, tmp_path: Path, fn: str, primal: str, failing: str, dtype: str) -> None:
    ran = cli("check", teeth_spec(tmp_path, fn, primal, dtype), "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED, ran.stderr
    doc = ran.json()
    assert doc["passed"] is False
    checks = {c["name"].split(" (")[0]: c for c in doc["specs"][0]["checks"]}
    assert checks[failing]["passed"] is False, checks
    worst = checks[failing]["worst"]
    assert worst["ad"] != pytest.approx(worst["reference"], rel=1e-4)


def test_wrong_in_one_entry_names_that_entry(cli: Cli, tmp_path: Path) -> None:
    doc = cli("check", teeth_spec(tmp_path, "square_one_entry", "[1.0, 2.0, 3.0, 4.0]", "float64"), "--json").json()
    worst = next(c for c in doc["specs"][0]["checks"] if c["name"] == "jacobian fwd vs FD")["worst"]
    assert worst["index"] == [2, 2] and worst["ad"] == pytest.approx(2.02 * 3) and worst["reference"] == pytest.approx(6.0)
    doc = cli("check", teeth_spec(tmp_path, "scale_bad_reverse_one_entry", "[1.0, 2.0, 3.0, 4.0, 5.0]"), "--json").json()
    worst = next(c for c in doc["specs"][0]["checks"] if c["name"] == "jacobian rev vs FD")["worst"]
    assert worst["index"] == [3, 3]


def test_reverse_only_rule_skips_forward_checks_with_a_reason(cli: Cli, tmp_path: Path) -> None:
    doc = cli("check", teeth_spec(tmp_path, "tanh_good", "[0.3]"), "--json").json()
    checks = doc["specs"][0]["checks"]
    assert all(c["name"] != "jacobian fwd vs FD" for c in checks)
    adjoint = next(c for c in checks if c["name"].startswith("adjoint"))
    assert adjoint["skipped"] and "forward mode not available" in adjoint["detail"]


@pytest.mark.parametrize(("fn", "primal", "dtype"), RIGHT, ids=[f"{r[0]}-{r[2]}" for r in RIGHT])
def test_right_rules_pass(cli: Cli, tmp_path: Path, fn: str, primal: str, dtype: str) -> None:
    ran = cli("check", teeth_spec(tmp_path, fn, primal, dtype), "--json")
    assert ran.exit_code == ExitCode.OK, ran.stdout
    assert ran.json()["passed"] is True


@pytest.mark.slow
def test_every_config_passes_check(cli: Cli) -> None:
    ran = cli("check", str(CONFIGS / "*.yaml"), "--json")
    failed = [
        (s["spec"], [c for c in s["checks"] if not c["passed"]], s.get("error")) for s in ran.json()["specs"] if not s["passed"]
    ]
    assert ran.exit_code == ExitCode.OK, failed
    files = {s["spec"].split(":")[0].split(" (")[0] for s in ran.json()["specs"]}
    assert files == {str(p) for p in CONFIGS.glob("*.yaml")}


def test_expect_mismatch_fails_with_the_entry(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("function: x**2\nprimals: {x: [1.0, 2.0]}\ntangents: [1.0, 1.0]\nexpect:\n  jvp: [2.0, 4.5]\n")
    ran = cli("check", path)
    assert ran.exit_code == ExitCode.CHECK_FAILED
    text = " ".join(ran.stdout.split())
    assert "FAIL expect jvp" in text and "jvp[1] 4 4.5" in text


def test_a_misspelt_expect_key_is_a_bad_spec(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("function: x**2\nprimals: {x: [1.0, 2.0]}\ntangents: [1.0, 1.0]\nexpect:\n  jvp.y: [2.0, 4.0]\n")
    ran = cli("check", path, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT
    message = ran.json()["specs"][0]["error"]["message"]
    assert message.endswith("s.yaml: expect.jvp.y: no output named 'jvp.y' (did you mean 'jvp'?)")
    path.write_text("function: x**2\nprimals: {x: [1.0, 2.0]}\nexpect:\n  jacobain.x: [[2.0, 0], [0, 4.0]]\n")
    message = cli("check", path, "--json").json()["specs"][0]["error"]["message"]
    assert "expect.jacobain.x: no output named 'jacobain.x' (did you mean 'jacobian'?)" in message


def test_check_at_a_point_where_f_is_not_finite(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("function: jnp.sum(jnp.log(x))\nprimals: {x: [-1.0, 2.0]}\n")
    ran = cli("check", path, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    checks = {c["name"]: c for c in ran.json()["specs"][0]["checks"]}
    assert checks["value finite"]["passed"] is False and "value is nan" in checks["value finite"]["detail"]
    assert checks["AD vs FD"]["skipped"] is True


def test_nonfinite_results_fail(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("function: jnp.sqrt(x)\nprimals: {x: [0.0, 1.0]}\n")
    doc = cli("check", path, "--json").json()
    finite = next(c for c in doc["specs"][0]["checks"] if c["name"] == "finite")
    assert finite["passed"] is False and "inf" in finite["detail"]


def test_bad_spec_among_good_ones_exits_3_and_reports_each(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("function: x\nprimals: {x: [1, 2]}\nwrt: [y]\n")
    ran = cli("check", CONFIGS / "seed002_adder.yaml", bad, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT
    specs = ran.json()["specs"]
    assert specs[0]["passed"] is True and specs[1]["error"]["exit_code"] == 3
    assert cli("check", str(tmp_path / "none*.yaml")).exit_code == ExitCode.BAD_INPUT


def test_fd_estimates_are_accurate_and_honest() -> None:
    """The FD reference alone, on closed forms: error within its estimate, estimate small."""

    def f(points: np.ndarray) -> np.ndarray:
        x = points
        return np.stack([np.sin(x[:, 0]) * x[:, 1], np.exp(x[:, 1] / 3), np.abs(x[:, 0] - 1e-3)], axis=1)

    x = np.array([0.0, 2.0])
    est = fd.jacobian(f, x)
    exact = np.array([[np.cos(0.0) * 2.0, np.sin(0.0)], [0.0, np.exp(2 / 3) / 3], [-1.0, 0.0]])
    assert np.all(np.abs(est.value - exact) <= 10 * est.error + 1e-15)
    assert np.max(est.error) < 1e-8


def test_every_finding_belongs_to_a_test_of_the_pytest_plugin(tmp_path: Path) -> None:
    """Each finding check gives is gathered by one of the plugin's items (groups_of), so none is lost there."""
    from jaxdiff_cli.checks.check import Settings, check_spec
    from jaxdiff_cli.checks.findings import DERIVATIVE_GROUPS, groups_of
    from jaxdiff_cli.inputs.cases import load_spec
    from jaxdiff_cli.inputs.spec import Overrides

    shutil.copy(ASSETS / "teeth.py", tmp_path / "teeth.py")
    specs = {
        "scalar": "function: jnp.sum(jnp.sin(x))\nprimals: {x: [1.0, 2.0]}\nexpect: {value: 1.7507684}\n",
        "large": "function: jnp.sin(x)\nprimals: {x: {ones: [70]}}\n",
        "not finite": "function: jnp.sum(jnp.log(x))\nprimals: {x: [-1.0]}\n",
        "custom_vjp": "function: teeth.py:tanh_good\nprimals: {x: [0.3]}\n",
        "complex, holomorphic": "function: jnp.sin(z)\nprimals: {z: [1+2j]}\ndtype: complex128\nholomorphic: true\n",
        "complex, real loss": "function: jnp.sum(jnp.abs(z)**2)\nprimals: {z: [1+2j]}\ndtype: complex128\n",
        "complex to complex": "function: jnp.conj(z)\nprimals: {z: [1+2j]}\ndtype: complex128\n",
        "order": "function: jnp.sin(x)\nprimals: {x: 0.5}\ndtype: float64\norder: 3\n",
    }
    names = set()
    for label, text in specs.items():
        path = tmp_path / f"{label.replace(' ', '_')}.yaml"
        path.write_text(text)
        report = check_spec(load_spec(str(path), Overrides()), Settings())
        assert report.error is None, report.error
        names |= {f.name for f in report.findings}
    for name in names:
        groups = groups_of(name)
        assert groups and all(g in DERIVATIVE_GROUPS or g.startswith("expect[") for g in groups), name
    assert {g for n in names for g in groups_of(n)} == {*DERIVATIVE_GROUPS, "expect[value]"}  # every item is used


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "fn",
    ["jnp.sum(jnp.sin(x)**2 + jnp.cos(x)**2)", "jnp.sum(jax.nn.softmax(5 * x))", "jnp.sum(jnp.exp(10*x) * jnp.exp(-10*x))"],
)
def test_a_function_constant_in_x_passes(cli: Cli, tmp_path: Path, fn: str, dtype: str) -> None:
    """J = 0 exactly, and AD returns rounding noise of the terms' size: the adjoint identity compared
    that noise against a bound relative to J (zero), and failed correct AD whatever --atol said."""
    path = tmp_path / "s.yaml"
    path.write_text(f"function: '{fn}'\nprimals: {{x: [0.3, -1.2, 2.5]}}\ndtype: {dtype}\n")
    ran = cli("check", path, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stdout
    checks = {c["name"]: c for c in ran.json()["specs"][0]["checks"]}
    assert not checks["adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩"]["skipped"]


def test_the_adjoint_still_convicts_reverse_mode_off_by_a_little_at_a_small_jacobian(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The absolute slack is atol on J's entries (1e-12 in float64): reverse mode off by 0.1% of a J
    of size 1e-3 still fails the adjoint identity."""
    from jaxdiff_cli.checks import derivatives

    real = derivatives._vjp_rows
    monkeypatch.setattr(derivatives, "_vjp_rows", lambda flat, result: real(flat, result) * 1.001)
    path = tmp_path / "s.yaml"
    path.write_text("function: 1e-3 * jnp.sin(x)\nprimals: {x: [0.3, -0.7, 1.1]}\ndtype: float64\n")
    ran = cli("check", path, "--json")
    failed = {c["name"] for c in ran.json()["specs"][0]["checks"] if not c["passed"]}
    assert ran.exit_code == ExitCode.CHECK_FAILED and "adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩" in failed

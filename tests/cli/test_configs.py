"""Every spec in configs/ runs through the CLI and reproduces its seed's printed numbers.

The seeds' numbers sit in each spec's ``expect:`` block; on top, each computation is checked
against an independent oracle (closed form or NumPy float64 finite differences).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from jaxdiff_cli.checks.expectations import check_outputs, parse
from jaxdiff_cli.errors import ExitCode
from jaxdiff_cli.inputs.values import Context

from ..conftest import CONFIGS, Cli
from ..oracles import fd_jacobian, mlp, poly, poly_jacobian, sigmoid_predict, sigmoid_predict_jacobian

# config -> the command lines that reproduce its seed computation
RUNS: dict[str, list[list[str]]] = {
    "seed000_poly.yaml": [["jvp"], ["vjp"], ["jacobian", "--mode", "fwd"], ["jacobian", "--mode", "rev"]],
    "seed000_dense_kernel.yaml": [["jvp"]],
    "seed000_dense_input.yaml": [["jvp"]],
    "seed001_simplefun_scalar.yaml": [["grad", "--value"]],
    "seed001_simplefun_vector.yaml": [["jacobian", "--mode", "fwd"], ["jacobian", "--mode", "rev"]],
    "seed001_simplefun_matrix.yaml": [["jacobian"]],
    "seed001_simplefun_rank3.yaml": [["jacobian"]],
    "seed001_simplefun_broadcast.yaml": [["jacobian", "--mode", "fwd"], ["jacobian", "--mode", "rev"], ["eval"]],
    "seed001_simplefun_matrix_broadcast.yaml": [["jacobian"], ["eval"]],
    "seed001_logistic_vjp.yaml": [["vjp"]],
    "seed001_dot_vjp.yaml": [["vjp"]],
    "seed001_dot_rank3_vjp.yaml": [["vjp"]],
    "seed001_blondel_vjp.yaml": [["vjp"]],
    "seed002_single.yaml": [["jvp"], ["jacobian"]],
    "seed002_exp_reducer.yaml": [["jvp"], ["jacobian"]],
    "seed002_adder.yaml": [["jvp"]],
    "seed003_tanh_hvp.yaml": [["hvp", "--mode", m] for m in ("fwd-rev", "rev-fwd", "rev-rev")],
    "seed003_logistic_jvp.yaml": [["jvp"]],
    "seed003_batched_vjp.yaml": [["vjp"]],
    "seed003_batched_jvp.yaml": [["jvp"]],
    "seed004_mlp.yaml": [["jvp"], ["vjp"], ["jacobian", "--mode", "fwd"], ["jacobian", "--mode", "rev", "--chunk-size", "2"]],
    "seed004_mlp_batched.yaml": [["jvp"], ["vjp"]],
    "cases_seed001_simplefun.yaml": [],  # a `run` spec: test_cases_config_matches_seed
    "pde_laplacian2d_sparse.yaml": [["jacobian"], ["jacobian", "--mode", "rev"]],  # sparse: true
}
CASES = [(name, args) for name, runs in RUNS.items() for args in runs]


def test_every_config_is_run() -> None:
    assert sorted(RUNS) == sorted(p.name for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize(("name", "args"), CASES, ids=[f"{n}:{' '.join(a)}" for n, a in CASES])
def test_config_matches_seed(cli: Cli, name: str, args: list[str]) -> None:
    path = CONFIGS / name
    ran = cli(args[0], path, *args[1:], "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.stderr == ""
    spec = yaml.safe_load(path.read_text())
    expectations = parse(spec.get("expect", {}), Context(spec.get("dtype", "float32"), path.parent, str(path)))
    # the product's own comparator, the one `jaxdiff check` uses
    mismatches = [f for f in check_outputs(ran.outputs(), expectations) if not f.passed]
    assert not mismatches, mismatches
    if spec.get("expect"):
        # the run produced at least one expected output: the comparison is not vacuous
        assert {e.name for e in expectations} & set(ran.outputs())


def _inputs(ran: Any) -> dict[str, np.ndarray]:
    return {k: np.asarray(v["data"], dtype=np.float64) for k, v in ran.json()["inputs"].items()}


def test_poly_against_closed_form(cli: Cli) -> None:
    x = np.array([1.0, 0.5, 1.5, 2.0])
    jac = poly_jacobian(x)
    out = cli("jvp", CONFIGS / "seed000_poly.yaml", "--json", "--dtype", "float64").outputs()
    np.testing.assert_allclose(out["value"], poly(x), rtol=1e-14)
    np.testing.assert_allclose(out["jvp"], jac @ np.array([0.2, 0.3, 0.4, 0.8]), rtol=1e-13)
    out = cli("vjp", CONFIGS / "seed000_poly.yaml", "--json", "--dtype", "float64").outputs()
    np.testing.assert_allclose(out["vjp.x"], np.array([0.5, 0.8, 1.0]) @ jac, rtol=1e-13)


def test_logistic_vjp_against_closed_form(cli: Cli) -> None:
    ran = cli("vjp", CONFIGS / "seed001_logistic_vjp.yaml", "--json")
    inp = _inputs(ran)
    jac = sigmoid_predict_jacobian(inp["primals.W"], float(inp["primals.b"]), inp["primals.inputs"])
    np.testing.assert_allclose(ran.outputs()["vjp.W"], inp["cotangents"] @ jac, rtol=1e-5, atol=1e-7)


def test_batched_products_against_closed_form(cli: Cli) -> None:
    ran = cli("vjp", CONFIGS / "seed003_batched_vjp.yaml", "--json")
    inp = _inputs(ran)
    jac = sigmoid_predict_jacobian(inp["primals.W"], float(inp["primals.b"]), inp["primals.inputs"])
    assert ran.json()["info"]["batch"] == 128
    np.testing.assert_allclose(ran.outputs()["vjp.W"], inp["cotangents"] @ jac, rtol=1e-5, atol=1e-6)

    ran = cli("jvp", CONFIGS / "seed003_batched_jvp.yaml", "--json")
    inp = _inputs(ran)
    jac = sigmoid_predict_jacobian(inp["primals.W"], float(inp["primals.b"]), inp["primals.inputs"])
    np.testing.assert_allclose(ran.outputs()["jvp"], inp["tangents.W"] @ jac.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ran.outputs()["value"], sigmoid_predict(inp["primals.W"], float(inp["primals.b"]), inp["primals.inputs"]), rtol=1e-6
    )


def test_tanh_hvp_modes_agree_with_hessian_and_closed_form(cli: Cli) -> None:
    path = CONFIGS / "seed003_tanh_hvp.yaml"
    hvps = {m: cli("hvp", path, "--mode", m, "--json") for m in ("fwd-rev", "rev-fwd", "rev-rev")}
    inp = _inputs(hvps["fwd-rev"])
    x, v = inp["primals.X"], inp["tangents.X"]
    t = np.tanh(x)
    sech2 = 1 - t**2
    closed = 2 * sech2 * (sech2 - 2 * t**2) * v  # f is separable: H is diagonal
    hess = cli("hessian", path, "--json").outputs()["hessian.X.X"]
    assert hess.shape == (30, 40, 30, 40)
    full = np.tensordot(hess, v, 2)
    for ran in hvps.values():
        out = ran.outputs()["hvp.X"]
        np.testing.assert_allclose(out, full, rtol=1e-4, atol=1e-4)  # the seed's own check
        np.testing.assert_allclose(out, closed, rtol=1e-4, atol=1e-5)


def _mlp_params() -> dict[str, np.ndarray]:
    with np.load(CONFIGS / "data" / "mlp_params.npz") as f:
        return {k: f[k].astype(np.float64) for k in f.files}


def _mlp_jacobians(params: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    def for_leaf(name: str) -> np.ndarray:
        def f(leaf: np.ndarray) -> np.ndarray:
            return mlp({**params, name: leaf}, x)

        return fd_jacobian(f, params[name])

    return {k: for_leaf(k) for k in params}


def test_mlp_parameter_derivatives_against_finite_differences(cli: Cli) -> None:
    params = _mlp_params()
    x = np.array([0.5, -1.0, 0.25, 2.0])
    jacs = _mlp_jacobians(params, x)
    with np.load(CONFIGS / "data" / "mlp_tangent.npz") as f:
        tangent = {k: f[k].astype(np.float64) for k in f.files}
    path = CONFIGS / "seed004_mlp.yaml"
    expected_jvp = sum(np.tensordot(jacs[k], tangent[k], tangent[k].ndim) for k in params)
    np.testing.assert_allclose(cli("jvp", path, "--json").outputs()["jvp"], expected_jvp, rtol=1e-4, atol=1e-5)
    out = cli("vjp", path, "--json").outputs()
    u = np.array([1.0, -2.0, 0.5])
    for k in params:
        np.testing.assert_allclose(out[f"vjp.params.{k}"], np.tensordot(u, jacs[k], 1), rtol=1e-4, atol=1e-5)
    for mode in ("fwd", "rev"):
        out = cli("jacobian", path, "--mode", mode, "--json").outputs()
        for k in params:
            np.testing.assert_allclose(out[f"jacobian.params.{k}"], jacs[k], rtol=1e-4, atol=1e-5)


def test_mlp_batched_against_single_products(cli: Cli) -> None:
    """A batch of 8 equals 8 single products (the loop seed 004 writes by hand)."""
    params = _mlp_params()
    x = np.array([0.5, -1.0, 0.25, 2.0])
    jacs = _mlp_jacobians(params, x)
    ran = cli("jvp", CONFIGS / "seed004_mlp_batched.yaml", "--json")
    tangents = {k[len("tangents.params.") :]: v for k, v in _inputs(ran).items() if k.startswith("tangents.")}
    out = ran.outputs()["jvp"]
    assert out.shape == (8, 3)
    for b in range(8):
        single = sum(np.tensordot(jacs[k], tangents[k][b], tangents[k][b].ndim) for k in params)
        np.testing.assert_allclose(out[b], single, rtol=1e-4, atol=1e-5)


def test_configs_readme_lists_every_config() -> None:
    readme = (CONFIGS / "README.md").read_text()
    for p in Path(CONFIGS).glob("*.yaml"):
        assert p.name in readme, p.name


def test_cases_config_matches_seed(cli: Cli) -> None:
    path = CONFIGS / "cases_seed001_simplefun.yaml"
    ran = cli("run", path, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    spec = yaml.safe_load(path.read_text())
    doc = ran.json()
    assert [c["name"] for c in doc["cases"]] == [c["name"] for c in spec["cases"]]
    for case, raw in zip(doc["cases"], spec["cases"], strict=True):
        expectations = parse(raw["expect"], Context("float32", CONFIGS, str(path)))
        covered = set()
        for result in case["results"]:
            outputs = {k: np.asarray(v["data"], dtype=v["dtype"]) for k, v in result["outputs"].items()}
            failed = [f for f in check_outputs(outputs, expectations) if not f.passed]
            assert not failed, (case["name"], result["op"], failed)
            covered |= {e.name for e in expectations} & set(outputs)
        assert covered == {e.name for e in expectations}, case["name"]


def test_sparse_poisson_residual_against_its_closed_form_on_a_larger_grid(cli: Cli) -> None:
    """The config's Jacobian, 16·L + diag(3u²), on a 20x20 grid: 400x400 with five diagonals."""
    pytest.importorskip("asdex")
    path = CONFIGS / "pde_laplacian2d_sparse.yaml"
    u = np.random.default_rng(0).normal(size=(20, 20))
    ran = cli("jacobian", path, "-p", f"u={u.tolist()}", "-p", "f={ones: [20, 20]}", "--dtype", "float64", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    t = 2 * np.eye(20) - np.eye(20, k=1) - np.eye(20, k=-1)
    closed = 16 * (np.kron(np.eye(20), t) + np.kron(t, np.eye(20))) + np.diag(3 * u.ravel() ** 2)
    np.testing.assert_allclose(ran.outputs()["jacobian"], closed, rtol=1e-14)
    sparse = ran.json()["info"]["sparse"]
    assert sparse["nnz"] == 5 * 400 - 4 * 20 and sparse["colors"] <= 8  # vs 400 JVPs dense

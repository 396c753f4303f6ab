"""End to end: complex values (--dtype complex*, --holomorphic), derivative --order K and taylor --order K,
through --json, -o, check, run and their bad inputs. Numbers against closed forms written out here."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import Cli, Ran


def complex_data(entry: dict[str, Any]) -> np.ndarray:
    """A JSON array entry back to NumPy; complex data is {"real": ..., "imag": ...}."""
    data = entry["data"]
    if isinstance(data, dict):
        assert set(data) == {"real", "imag"}
        return np.asarray(data["real"], np.float64) + 1j * np.asarray(data["imag"], np.float64)
    return np.asarray(data, np.float64)


def ok(ran: Ran) -> dict[str, Any]:
    assert ran.exit_code == ExitCode.OK, ran.stderr
    return ran.json()


# --------------------------------------------------------------------------- complex values


def test_complex_json_has_real_and_imag_parts_in_the_array_shape(cli: Cli) -> None:
    doc = ok(cli("jacobian", "-f", "z**2", "-p", "z=[1+2j, 3j]", "--dtype", "complex64", "--holomorphic", "--json"))
    out = doc["outputs"]["jacobian.z"]
    assert out["dtype"] == "complex64" and out["shape"] == [2, 2]
    assert out["data"] == {"real": [[2.0, 0.0], [0.0, 0.0]], "imag": [[4.0, 0.0], [0.0, 6.0]]}
    assert doc["inputs"]["primals.z"]["data"] == {"real": [1.0, 0.0], "imag": [2.0, 3.0]}
    assert doc["info"]["holomorphic"] is True and doc["dtype"] == "complex64"


def test_complex_json_reads_back_to_the_same_bits(cli: Cli) -> None:
    doc = ok(cli("eval", "-f", "jnp.exp(z) / 3", "-p", "z=[0.1+0.7j, -2.3j]", "--dtype", "complex64", "--json"))
    got = complex_data(doc["outputs"]["value"]).astype(np.complex64)
    want = np.exp(np.array([0.1 + 0.7j, -2.3j], np.complex64)) / np.complex64(3)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # every part is a float32 number written in its shortest round-trip form
    for part in ("real", "imag"):
        for v in doc["outputs"]["value"]["data"][part]:
            assert float(str(np.float32(v))) == v


def test_the_readme_worked_example_of_jax_gradient_convention(cli: Cli) -> None:
    """f(z) = |z|² at z = 1+2j: JAX's grad is ∂f/∂x − i·∂f/∂y = 2 − 4j; the ascent direction is 2z = 2 + 4j."""
    doc = ok(cli("grad", "-f", "jnp.abs(z)**2", "-p", "z=1+2j", "--dtype", "complex128", "--json"))
    assert complex_data(doc["outputs"]["grad.z"]) == 2 - 4j
    doc = ok(cli("grad", "-f", "z**2", "-p", "z=1+2j", "--dtype", "complex128", "--holomorphic", "--json"))
    assert complex_data(doc["outputs"]["grad.z"]) == 2 + 4j  # f'(z) = 2z


def test_terminal_shows_a_plus_bj(cli: Cli) -> None:
    ran = cli("eval", "-f", "z * 2", "-p", "z=[1+2j, -3.5j]", "--dtype", "complex128")
    assert ran.exit_code == ExitCode.OK
    assert "[2.+4.j 0.-7.j]" in ran.stdout
    assert "complex128" in ran.stdout


def test_complex_npz_and_npy(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "r.npz"
    assert (
        cli("vjp", "-f", "jnp.conj(z) * z**2", "-p", "z=[1+1j, 2]", "-c", "[1j, 1]", "--dtype", "complex128", "-o", out).exit_code
        == 0
    )
    with np.load(out) as saved:
        z, u = np.array([1 + 1j, 2]), np.array([1j, 1])
        np.testing.assert_allclose(saved["vjp.z"], 2 * abs(z) ** 2 * u + np.conj(z**2 * u), rtol=1e-14)
        assert saved["vjp.z"].dtype == np.complex128
    npy = tmp_path / "j.npy"
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "function: 'lambda z, w: z * w'\nprimals: {z: '1+1j', w: [1, '2j']}\nwrt: [z, w]\ndtype: complex64\nholomorphic: true\n"
    )
    assert cli("jacobian", spec, "-o", npy).exit_code == ExitCode.OK
    flat = np.load(npy)  # several blocks: the flat (outputs, inputs) matrix, complex kept
    assert flat.dtype == np.complex64
    np.testing.assert_allclose(flat, [[1, 1 + 1j, 0], [2j, 0, 1 + 1j]])


def test_complex_value_files(cli: Cli, tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.array([1 + 2j, -1j]))
    spec = tmp_path / "s.yaml"
    spec.write_text("function: jnp.sum(jnp.abs(z)**2)\nprimals: {z: {file: z.npy}}\ndtype: complex128\n")
    doc = ok(cli("grad", spec, "--json"))
    np.testing.assert_allclose(complex_data(doc["outputs"]["grad.z"]), 2 * np.conj([1 + 2j, -1j]))


HOLOMORPHIC = "function: z**3 + jnp.sin(z)\nprimals: {z: ['1+2j', '-0.5j', 0.3]}\ndtype: complex128\nholomorphic: true\n"
NOT_HOLOMORPHIC = "function: z * jnp.conj(z) + z\nprimals: {z: ['1+2j', '-0.5j', 0.3]}\ndtype: complex128\nholomorphic: true\n"


def test_check_passes_a_holomorphic_function_and_catches_one_that_is_not(cli: Cli, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(HOLOMORPHIC)
    bad.write_text(NOT_HOLOMORPHIC)
    doc = ok(cli("check", good, "--json"))
    names = {c["name"]: c for c in doc["specs"][0]["checks"]}
    assert names["Cauchy-Riemann ∂f/∂y = i·∂f/∂x (FD)"]["passed"]
    assert names["jacobian fwd vs FD (both real directions)"]["passed"]
    ran = cli("check", bad, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    checks = {c["name"]: c for c in ran.json()["specs"][0]["checks"]}
    cr = checks["Cauchy-Riemann ∂f/∂y = i·∂f/∂x (FD)"]
    assert not cr["passed"] and "f is not holomorphic" in cr["detail"]
    assert not checks["jacobian fwd vs FD (both real directions)"]["passed"]
    assert checks["jvp vs FD (every real direction)"]["passed"]  # jvp takes any function


@pytest.mark.parametrize(
    "text",
    [
        "function: jnp.sum(jnp.abs(z)**2 * jnp.real(z))\nprimals: {z: ['1+2j', '-0.5j', 0.3]}\ndtype: complex64\n",
        "function: jnp.exp(1j * x) * x\nprimals: {x: [0.1, 2.0]}\ndtype: float64\n",
        "function: z * jnp.conj(z) + z**2\nprimals: {z: {random: normal, shape: [40], seed: 1}}\ndtype: complex128\n",
    ],
    ids=["complex to real", "real to complex", "complex to complex, 80 real directions"],
)
def test_check_of_functions_with_complex_values(cli: Cli, tmp_path: Path, text: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    doc = ok(cli("check", spec, "--json"))
    assert doc["passed"]
    assert any(c["name"].startswith("jvp vs FD") and not c["skipped"] for c in doc["specs"][0]["checks"])


def test_check_convicts_a_wrong_complex_gradient(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grad that returned the steepest-ascent direction (PyTorch's convention) instead of JAX's fails check."""
    import jax.numpy as jnp

    from jaxdiff_cli.engine import plans

    spec = tmp_path / "s.yaml"
    spec.write_text("function: jnp.sum(jnp.abs(z)**2 * jnp.real(z))\nprimals: {z: ['1+2j', '-0.5j']}\ndtype: complex128\n")
    real_plan = plans.plan_grad

    def conjugated(problem: Any) -> Any:
        plan = real_plan(problem)
        return plans.Plan(
            plan.op,
            plan.g,
            plan.args,
            lambda o: {**plan.finish(o), "grad": {k: jnp.conj(v) for k, v in plan.finish(o)["grad"].items()}},
            plan.where,
        )

    monkeypatch.setattr(plans, "plan_grad", conjugated)
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    checks = {c["name"]: c for c in ran.json()["specs"][0]["checks"]}
    assert not checks["grad vs FD (∂f/∂x − i·∂f/∂y)"]["passed"]
    assert "imag part" in checks["grad vs FD (∂f/∂x − i·∂f/∂y)"]["worst"]["output"]


def test_check_update_records_complex_values_that_read_back(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(HOLOMORPHIC)
    assert cli("check", spec, "--update").exit_code == ExitCode.OK
    text = spec.read_text()
    assert "re:" in text and "im:" in text
    assert ok(cli("check", spec, "--json"))["passed"]
    spec.write_text(text.replace("-7.834221486783832", "-7.8342"))
    assert cli("check", spec).exit_code == ExitCode.CHECK_FAILED


# --------------------------------------------------------------------------- derivative and taylor

X0 = 0.37


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_cotangents_are_real_or_complex_as_the_output_is(cli: Cli, dtype: str, tmp_path: Path) -> None:
    # A real output of complex inputs takes a real cotangent (the default 1.0, a list, a constructor):
    # the run's complex dtype used to make it complex and then refuse it. Closed forms: for
    # f(z) = |z|^2 JAX's vjp is 2·conj(z)·u; for f(x) = c·x of real x it is Re(u·c).
    z, rtol = np.array([1 + 2j, 3 - 1j]), (1e-6 if dtype == "complex64" else 1e-14)
    prim = "z={re: [1.0, 3.0], im: [2.0, -1.0]}"
    out = ok(cli("vjp", "-f", "lambda z: jnp.sum(jnp.abs(z)**2)", "-p", prim, "--dtype", dtype, "--json"))["outputs"]
    np.testing.assert_allclose(complex_data(out["vjp.z"]), 2 * np.conj(z), rtol=rtol)
    for u in ("[1.0, 2.0]", "{linspace: [1, 2, 2]}"):
        out = ok(cli("vjp", "-f", "lambda z: jnp.abs(z)**2", "-p", prim, "-c", u, "--dtype", dtype, "--json"))["outputs"]
        assert out["value"]["dtype"] == {"complex64": "float32", "complex128": "float64"}[dtype]
        np.testing.assert_allclose(complex_data(out["vjp.z"]), 2 * np.conj(z) * [1.0, 2.0], rtol=rtol)
    ran = cli("vjp", "-f", "lambda z: jnp.abs(z)**2", "-p", prim, "-c", "[1+1j, 2.0]", "--dtype", dtype)
    assert ran.exit_code == ExitCode.BAD_INPUT and "cotangents: complex values where the output holds float" in ran.stderr
    # A complex output of real inputs in a real run takes a complex cotangent.
    real = {"complex64": "float32", "complex128": "float64"}[dtype]
    out = ok(cli("vjp", "-f", "lambda x: x * (1+2j)", "-p", "x=[1.0, 2.0]", "-c", "[1+1j, 2.0]", "--dtype", real, "--json"))
    np.testing.assert_allclose(out["outputs"]["vjp.x"]["data"], [((1 + 1j) * (1 + 2j)).real, 2.0], rtol=rtol)
    # And check --update of such a spec records vjp (it stopped at the default cotangent).
    spec = tmp_path / "c.yaml"
    spec.write_text(f"function: 'lambda z: jnp.sum(jnp.abs(z)**2)'\nprimals: {{{prim.replace('=', ': ', 1)}}}\ndtype: {dtype}\n")
    assert cli("check", "--update", spec).exit_code == ExitCode.OK
    assert "vjp.z:" in spec.read_text() and cli("check", spec).exit_code == ExitCode.OK


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_derivative_of_scalar_to_vector_and_matrix(cli: Cli, dtype: str) -> None:
    doc = ok(
        cli(
            "derivative",
            "-f",
            "jnp.stack([sin(x), x**3, 1/(2 - x)])",
            "-p",
            f"x={X0}",
            "--order",
            "3",
            "--dtype",
            dtype,
            "--json",
        )
    )
    got = np.asarray(doc["outputs"]["derivative"]["data"])
    want = [-math.cos(X0), 6.0, 6 / (2 - X0) ** 4]
    np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 2e-5)
    assert doc["outputs"]["derivative"]["dtype"] == dtype and doc["info"]["order"] == 3
    assert doc["info"]["method"] == "nested forward mode (jvp of jvp ...)"  # auto, up to order 4
    doc = ok(
        cli(
            "derivative",
            "-f",
            "jnp.array([[exp(x), x**2], [sin(2*x), 1/x]])",
            "-p",
            f"x={X0}",
            "--order",
            "2",
            "--dtype",
            dtype,
            "--json",
        )
    )
    want2 = [[math.exp(X0), 2.0], [-4 * math.sin(2 * X0), 2 / X0**3]]
    np.testing.assert_allclose(doc["outputs"]["derivative"]["data"], want2, rtol=1e-12 if dtype == "float64" else 2e-5)


def test_derivative_along_a_tangent_and_complex128(cli: Cli) -> None:
    doc = ok(
        cli(
            "derivative",
            "-f",
            "jnp.exp(x)",
            "-p",
            "x=[0.5, 1.0]",
            "-t",
            "x=[2.0, -1.0]",
            "--order",
            "5",
            "--dtype",
            "float64",
            "--json",
        )
    )
    np.testing.assert_allclose(doc["outputs"]["derivative"]["data"], np.exp([0.5, 1.0]) * np.array([2.0, -1.0]) ** 5, rtol=1e-13)
    doc = ok(cli("derivative", "-f", "1/(1 - z)", "-p", "z=0.3+0.4j", "--order", "8", "--dtype", "complex128", "--json"))
    assert complex_data(doc["outputs"]["derivative"]) == pytest.approx(math.factorial(8) / (1 - (0.3 + 0.4j)) ** 9, rel=1e-12)


def test_derivative_says_when_it_falls_back(cli: Cli) -> None:
    doc = ok(cli("derivative", "-f", "tan(x)", "-p", "x=0.5", "--order", "3", "--dtype", "float64", "--json"))
    assert doc["info"]["method"] == "nested forward mode (jvp of jvp ...)" and "fallback" not in doc["info"]
    sec2, tan2 = 1 / math.cos(0.5) ** 2, math.tan(0.5) ** 2
    assert doc["outputs"]["derivative"]["data"] == pytest.approx(2 * sec2 * (sec2 + 2 * tan2), rel=1e-13)
    # From order 5 auto tries jet, which has no rule for tan: it falls back, and says so.
    doc = ok(cli("derivative", "-f", "tan(x)", "-p", "x=0.5", "--order", "5", "--dtype", "float64", "--json"))
    assert doc["info"]["method"] == "nested forward mode (jvp of jvp ...)"
    assert doc["info"]["fallback"] == "jet has no Taylor rule for the primitive 'tan'"
    # tan⁽⁵⁾ = 8 sec²x (2 sec⁴x + 11 sec²x tan²x + 2 tan⁴x)
    fifth = 8 * sec2 * (2 * sec2**2 + 11 * sec2 * tan2 + 2 * tan2**2)
    assert doc["outputs"]["derivative"]["data"] == pytest.approx(fifth, rel=1e-12)
    ran = cli("derivative", "-f", "tan(x)", "-p", "x=0.5", "--order", "5")
    assert "fallback: jet has no Taylor rule" in " ".join(ran.stdout.split())


def test_taylor_json_npy_and_npz(cli: Cli, tmp_path: Path) -> None:
    doc = ok(
        cli(
            "taylor",
            "-f",
            "jnp.exp(x)",
            "-p",
            "x=[0.0, 1.0]",
            "-t",
            "x=[1.0, 2.0]",
            "--order",
            "4",
            "--dtype",
            "float64",
            "--json",
        )
    )
    got = np.asarray(doc["outputs"]["taylor"]["data"])
    want = [[np.exp(x) * v**k / math.factorial(k) for x, v in ((0.0, 1.0), (1.0, 2.0))] for k in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert doc["outputs"]["taylor"]["shape"] == [5, 2]
    npy = tmp_path / "t.npy"
    assert cli("taylor", "-f", "sin(x)", "-p", "x=0.5", "--order", "3", "--dtype", "float64", "-o", npy).exit_code == ExitCode.OK
    np.testing.assert_allclose(np.load(npy), [math.sin(0.5), math.cos(0.5), -math.sin(0.5) / 2, -math.cos(0.5) / 6], rtol=1e-13)
    npz = tmp_path / "t.npz"
    assert cli("derivative", "-f", "sin(x)", "-p", "x=0.5", "--order", "2", "-o", npz, "-q").exit_code == ExitCode.OK
    with np.load(npz) as saved:
        assert set(saved.files) == {"value", "derivative"}


def test_derivative_and_taylor_from_a_spec_with_run(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "function: jnp.stack([sin(x), x**3])\nprimals: {x: 0.5}\ndtype: float64\n"
        "run: [{derivative: {order: 3}}, {taylor: {order: 4, mode: jvp}}, {derivative: {order: 2, mode: jet}}]\n"
    )
    doc = ok(cli("run", spec, "--json"))
    results = {r["name"]: r for r in doc["cases"][0]["results"]}
    assert set(results) == {"derivative[order=3]", "taylor[mode=jvp,order=4]", "derivative[mode=jet,order=2]"}
    np.testing.assert_allclose(results["derivative[order=3]"]["outputs"]["derivative"]["data"], [-math.cos(0.5), 6.0], rtol=1e-13)
    coefficients = np.asarray(results["taylor[mode=jvp,order=4]"]["outputs"]["taylor"]["data"])
    np.testing.assert_allclose(coefficients[:, 1], [0.125, 0.75, 1.5, 1.0, 0.0], atol=1e-14)
    assert results["taylor[mode=jvp,order=4]"]["info"]["method"] == "nested forward mode (jvp of jvp ...)"
    np.testing.assert_allclose(
        results["derivative[mode=jet,order=2]"]["outputs"]["derivative"]["data"], [-math.sin(0.5), 3.0], rtol=1e-13
    )


def test_spec_order_key_and_check(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "function: jnp.stack([sin(x), exp(2*x), 1/(1 + x)])\nprimals: {x: 0.3}\ndtype: float64\norder: 5\n"
        f"expect:\n  derivative: [{math.cos(0.3)}, {32 * math.exp(0.6)}, {-120 / 1.3**6}]\n  rtol: 1.0e-12\n"
    )
    doc = ok(cli("derivative", spec, "--json"))
    assert doc["info"]["order"] == 5
    doc = ok(cli("check", spec, "--json"))
    names = {c["name"]: c for c in doc["specs"][0]["checks"]}
    for name in ("expect derivative", "derivative: jet vs nested jvp", "taylor: jet vs nested jvp",
                 "derivative vs FD of order 4", "taylor[5] vs FD of order 4 / 5!"):  # fmt: skip
        assert names[name]["passed"] and not names[name]["skipped"], name


def test_check_convicts_a_wrong_taylor_mode(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If jet's derivatives were off by a factor (the k! of a Taylor coefficient, say), check fails."""
    from jaxdiff_cli.engine import taylor

    spec = tmp_path / "s.yaml"
    spec.write_text("function: exp(2*x) * x\nprimals: {x: 0.3}\ndtype: float64\norder: 3\nmode: jet\n")
    real = taylor.jet_derivatives

    def off(*args: Any) -> Any:
        value, derivs = real(*args)
        return value, [d / math.factorial(k + 1) for k, d in enumerate(derivs)]

    monkeypatch.setattr(taylor, "jet_derivatives", off)
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    failed = {c["name"] for c in ran.json()["specs"][0]["checks"] if not c["passed"]}
    assert {"derivative: jet vs nested jvp", "derivative vs FD of order 2"} <= failed


def test_check_of_a_fallback_skips_jet_and_still_differences(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("function: jax.nn.softplus(x) * x\nprimals: {x: [0.3, 0.1]}\ntangents: {x: [[1, 0], [0, 1]]}\norder: 4\n")
    doc = ok(cli("check", spec, "--json"))
    checks = {c["name"]: c for c in doc["specs"][0]["checks"]}
    assert checks["derivative: jvp vs jet"]["skipped"] and "custom_jvp" in checks["derivative: jvp vs jet"]["detail"]
    assert checks["derivative vs FD of order 3"]["passed"] and checks["derivative vs FD of order 3"]["detail"] == "4 entries"


# --------------------------------------------------------------------------- bad inputs

BAD: list[tuple[str, str | None, list[str], int, str]] = [
    ("complex literal in a float32 run", None, ["grad", "-f", "jnp.abs(z)", "-p", "z=1+2j"], 3,
     "<command line>: --primal z: a complex64 value in a float32 run"),
    ("not a complex number", None, ["eval", "-f", "z", "-p", "z=1+2i"], 3, "--primal z: '1+2i' is not a number"),
    ("re and im of two shapes", "function: z\nprimals: {z: {re: [1, 2], im: 3}}\ndtype: complex64\n", ["eval", "{spec}"], 3,
     "spec.yaml: primals.z: re has shape (2,) but im has ()"),
    ("unknown complex dtype", None, ["eval", "-f", "z", "-p", "z=1", "--dtype", "complex256"], 3,
     "unknown dtype 'complex256' (float32, float64, complex64, complex128)"),
    ("holomorphic of a real run", None, ["grad", "-f", "x**2", "-p", "x=1.0", "--holomorphic"], 3,
     "--holomorphic needs complex inputs, but x is real"),
    ("holomorphic of a real loss", None, ["grad", "-f", "jnp.abs(z)", "-p", "z=1j", "--dtype", "complex64", "--holomorphic"], 3,
     "--holomorphic needs complex outputs"),
    ("complex grad without holomorphic", None, ["grad", "-f", "z**2", "-p", "z=1j", "--dtype", "complex64"], 3,
     "grad needs a float output, but it returns complex64 (pass --holomorphic"),
    ("complex jacobian without holomorphic", None, ["jacobian", "-f", "z*jnp.conj(z)", "-p", "z=[1j]", "--dtype", "complex64"], 3,
     "has a complex Jacobian only if it is holomorphic"),
    ("forward mode of a complex to real function", None,
     ["jacobian", "-f", "jnp.abs(z)", "-p", "z=[1j]", "--dtype", "complex64", "--mode", "fwd"], 3,
     "--mode fwd cannot differentiate"),
    ("complex hessian without holomorphic", None,
     ["hessian", "-f", "jnp.sum(jnp.abs(z)**2)", "-p", "z=[1j]", "--dtype", "complex64"], 3,
     "hessian of a function of complex inputs is computed for a holomorphic function only"),
    ("chunked jacobian of complex to real", None,
     ["jacobian", "-f", "jnp.abs(z)", "-p", "z=[1j, 2]", "--dtype", "complex64", "--chunk-size", "1"], 3,
     "--chunk-size takes a Jacobian whose inputs and outputs are both real or both complex"),
    ("complex cotangent of a real output", None, ["vjp", "-f", "x*2", "-p", "x=[1.0]", "-c", "[1j]"], 3,
     "<command line>: cotangents: complex values where the output holds float32 numbers"),
    ("order missing", None, ["derivative", "-f", "sin(x)", "-p", "x=1"], 2, "--order: derivative needs an order"),
    ("order zero", None, ["taylor", "-f", "sin(x)", "-p", "x=1", "--order", "0"], 2, "--order: 0 is not an order from 1 to 32"),
    ("order too high", None, ["derivative", "-f", "sin(x)", "-p", "x=1", "-k", "33"], 2, "33 is not an order from 1 to 32"),
    ("order in a spec", "function: sin(x)\nprimals: {x: 1.0}\norder: 0\n", ["derivative", "{spec}"], 3,
     "spec.yaml: order: 0 is not an order from 1 to 32"),
    ("order missing from a spec", "function: sin(x)\nprimals: {x: 1.0}\n", ["taylor", "{spec}"], 3,
     "spec.yaml: order: taylor needs an order"),
    ("order of a run step", "function: sin(x)\nprimals: {x: 1.0}\nrun: [{derivative: {order: 2.5}}]\n", ["run", "{spec}"], 3,
     "spec.yaml: run[0].derivative.order: 2.5 is not an order"),
    ("no direction", None, ["derivative", "-f", "sin(x)", "-p", "x=[1.0, 2.0]", "--order", "2"], 3,
     "needs a direction: tangents shaped like x (2,)"),
    ("direction of the wrong shape", None, ["derivative", "-f", "sin(x)", "-p", "x=[1.0, 2.0]", "-t", "x=[1.0]", "-k", "2"], 3,
     "--tangent x: shape (1,) does not match primal x (2,)"),
    ("unknown derivative mode", None, ["derivative", "-f", "sin(x)", "-p", "x=1", "-k", "2", "--mode", "fwd"], 2,
     "--mode: unknown mode 'fwd' (auto, jet, jvp)"),
    ("jet forced where it has no rule", None, ["derivative", "-f", "tan(x)", "-p", "x=1", "-k", "2", "--mode", "jet"], 4,
     "Taylor mode cannot differentiate this function: jet has no Taylor rule for the primitive 'tan'"),
    ("nested forward mode too deep", None, ["derivative", "-f", "tan(x)", "-p", "x=1", "-k", "11"], 3,
     "nested forward mode stops at order 10"),
    ("integer output", None, ["derivative", "-f", "jnp.floor(x).astype(jnp.int32)", "-p", "x=1.0", "-k", "1"], 3,
     "derivative needs float or complex outputs"),
    ("the function's own error", None, ["derivative", "-f", "jnp.dot(jnp.ones(3), jnp.ones(4)) * x", "-p", "x=1.0", "-k", "2"], 4,
     "the function failed to trace"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "args", "code", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input(cli: Cli, tmp_path: Path, name: str, text: str | None, args: list[str], code: int, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    if text is not None:
        spec.write_text(text)
    ran = cli(*[a.replace("{spec}", str(spec)) for a in args])
    assert ran.exit_code == code, (ran.stdout, ran.stderr)
    assert message in " ".join(ran.stderr.split()), ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    if name != "order of a run step":  # run reports a case's error and prints its document only with --json
        assert ran.stdout == ""
    if code != 2:
        assert ran.stderr.startswith("error: ") and ran.stderr.count("\n") == 1, ran.stderr


def test_help_never_imports_jax_for_the_new_commands() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from jaxdiff_cli.cli import app; "
        "r = [CliRunner().invoke(app, [c, '--help']) for c in ('derivative', 'taylor')]; "
        "assert all(x.exit_code == 0 for x in r); print(json.dumps('jax' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_bench_times_taylor_mode_against_nested_forward_mode(cli: Cli) -> None:
    doc = ok(
        cli("bench", "-f", "sin(x) * exp(x)", "-p", "x=0.3", "--op", "taylor", "--order", "4", "--min-time", "0.01", "--json")
    )
    assert [t["mode"] for t in doc["timings"]] == ["jet", "jvp"]
    doc = ok(cli("bench", "-f", "tan(x)", "-p", "x=0.3", "--op", "derivative", "-k", "3", "--min-time", "0.01", "--json"))
    assert [t["mode"] for t in doc["timings"]] == ["jvp"]
    assert "jet not timed" in doc["auto"] and "'tan'" in doc["auto"]


def test_complex_pytree_arguments_in_any_order(cli: Cli, tmp_path: Path) -> None:
    """f(w, p) = Σ |p.a·w + p.b|², u = p.a·w + p.b: JAX's gradients are 2·w·ū (p.a), 2·ū (p.b), 2·Σ p.a·ū (w)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "function: \"lambda w, p: jnp.sum(jnp.abs(p['a'] * w + p['b'])**2)\"\n"
        "primals:\n  p: {a: ['1+1j', 2], b: {re: [0.5, -1], im: [1, 0]}}\n  w: 0.3-0.2j\n"
        "wrt: [p, w]\ndtype: complex128\ntangents: {p: {a: [1, 1j], b: [0, 1]}, w: 1j}\norder: 2\n"
    )
    a, b, w = np.array([1 + 1j, 2]), np.array([0.5 + 1j, -1]), 0.3 - 0.2j
    u = a * w + b
    out = ok(cli("grad", spec, "--json"))["outputs"]
    np.testing.assert_allclose(complex_data(out["grad.p.a"]), 2 * w * np.conj(u), rtol=1e-14)
    np.testing.assert_allclose(complex_data(out["grad.p.b"]), 2 * np.conj(u), rtol=1e-14)
    np.testing.assert_allclose(complex_data(out["grad.w"]), 2 * np.sum(a * np.conj(u)), rtol=1e-14)
    # along the tangents u(s) = u + s·du + s²·ta·tw, du = ta·w + a·tw + tb: f''(0) = 2·Σ|du|² + 4·Σ Re(ū·ta·tw)
    ta, tb, tw = np.array([1, 1j]), np.array([0, 1]), 1j
    du = ta * w + a * tw + tb
    second = 2 * np.sum(np.abs(du) ** 2) + 4 * np.sum(np.real(np.conj(u) * ta * tw))
    doc = ok(cli("derivative", spec, "--json"))
    assert doc["info"]["method"] == "nested forward mode (jvp of jvp ...)"  # and jet has no rule for |z| of a complex z
    assert complex_data(doc["outputs"]["derivative"]) == pytest.approx(second, rel=1e-13)
    assert ok(cli("check", spec, "--json"))["passed"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_check_passes_a_derivative_that_cancels_to_zero_along_v(cli: Cli, tmp_path: Path, order: int, dtype: str) -> None:
    """Along ones, softmax(5x)·x has K-th derivative 0 while its terms are ~5^K: both methods return
    rounding noise of that size (float32, K = 4: jet 3e-4, nested jvp 1.7e-3), which is not a failure."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "function: jnp.sum(jax.nn.softmax(x * 5) * x)\nprimals: {x: {random: normal, shape: [10], seed: 0}}\n"
        f"tangents: {{x: {{ones: 10}}}}\norder: {order}\ndtype: {dtype}\n"
    )
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.OK, [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]


@pytest.mark.parametrize(("dtype", "off"), [("float32", 1e-3), ("float64", 1e-6)])
def test_check_convicts_a_taylor_mode_off_by_a_little(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, off: float
) -> None:
    """The rounding allowance is a few hundred eps of the derivative's size, not a blanket: a jet off
    by 1e-3 (float32) or 1e-6 (float64) relative still fails against nested jvp and differences."""
    from jaxdiff_cli.engine import taylor

    spec = tmp_path / "s.yaml"
    spec.write_text(f"function: exp(2*x) * x\nprimals: {{x: 0.3}}\ndtype: {dtype}\norder: 3\nmode: jet\n")
    real = taylor.jet_derivatives

    def slightly_off(*args: Any) -> Any:
        value, derivs = real(*args)
        return value, [d * (1 + off) for d in derivs]

    monkeypatch.setattr(taylor, "jet_derivatives", slightly_off)
    ran = cli("check", spec, "--json")
    failed = {c["name"] for c in ran.json()["specs"][0]["checks"] if not c["passed"]}
    assert ran.exit_code == ExitCode.CHECK_FAILED and {"derivative: jet vs nested jvp", "derivative vs FD of order 2"} <= failed

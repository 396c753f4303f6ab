"""Right answers or a clear refusal: what users vary, against closed forms and float64 differences.

Primals bind to parameters by name in every function form, whatever order they are given in;
pytree Hessians, Jacobians, gradients and HVPs have JAX's nesting and full names in every output
path; dtypes say what was computed; has_aux; integer arguments; run keeps every result; a bug of
jaxdiff is not blamed on the user; a non-finite value is reported beside a finite derivative.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxdiff_cli.errors import ExitCode

from ..conftest import ASSETS, Cli, Ran
from ..oracles import fd_hessian, fd_jacobian

# --------------------------------------------------------------------------- binding by name

# f(x, y, z) = Σ x y² + 3 z x: every argument plays another part, so a wrong binding shows.
X, Y, Z = np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.5, 4.0])
GRADS = {"x": Y**2 + 3 * Z, "y": 2 * X * Y, "z": 3 * X}
FORMS = {
    "lambda": "lambda x, y, z: jnp.sum(x * y**2 + 3*z*x)",
    "expression": "jnp.sum(x * y**2 + 3*z*x)",
    "module": "named_fns:f3",
    "file": "named_fns.py:f3",
    "keyword-only": "named_fns:f3_kw",
    "positional-only": "named_fns:f3_pos",
    "defaulted": "named_fns:f3_default",
    "kwargs": "named_fns:f3_kwargs",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec folder holding the user's module (module and file functions are found next to the spec)."""
    path = tmp_path_factory.mktemp("named")
    shutil.copy(ASSETS / "named_fns.py", path / "named_fns.py")
    return path


def _run(cli: Cli, folder: Path, spec: dict[str, Any], *args: str) -> Ran:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return cli(*args, path, "--json")


def _out(ran: Ran, name: str) -> np.ndarray:
    assert ran.exit_code == ExitCode.OK, ran.stderr
    return np.asarray(ran.outputs()[name], np.float64)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    form=st.sampled_from(sorted(FORMS)),
    order=st.permutations(["x", "y", "z"]),
    wrt=st.sampled_from([["x"], ["y"], ["z", "x"], None]),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_order_of_primals_never_changes_a_result(
    cli: Cli, folder: Path, form: str, order: list[str], wrt: list[str] | None, dtype: str
) -> None:
    values = {"x": X, "y": Y, "z": Z}
    spec: dict[str, Any] = {
        "function": FORMS[form],
        "primals": {n: values[n].tolist() for n in order},
        "dtype": dtype,
    }
    if wrt is not None:
        spec["wrt"] = wrt
    ran = _run(cli, folder, spec, "grad")
    rtol = 1e-6 if dtype == "float32" else 1e-14
    for name in wrt or ["x"]:  # the default is the function's first parameter, not the first primal
        np.testing.assert_allclose(_out(ran, f"grad.{name}"), GRADS[name], rtol=rtol)
    assert ran.json()["info"]["wrt"] == (wrt or ["x"])


@pytest.mark.parametrize("order", list(itertools.permutations(["x", "y", "z"])))
def test_order_of_command_line_primals_never_changes_a_result(cli: Cli, order: tuple[str, ...]) -> None:
    values = {"x": X, "y": Y, "z": Z}
    primals = [a for n in order for a in ("-p", f"{n}={values[n].tolist()}")]
    ran = cli("grad", "-f", FORMS["lambda"], *primals, "-w", "y,z", "--json")
    np.testing.assert_allclose(_out(ran, "grad.y"), GRADS["y"], rtol=1e-6)
    np.testing.assert_allclose(_out(ran, "grad.z"), GRADS["z"], rtol=1e-6)


def test_the_issue_reproductions(cli: Cli, folder: Path) -> None:
    ran = cli("grad", "-f", "lambda a, b: jnp.sum(a*b**2)", "-p", "b=[3.0]", "-p", "a=[2.0]", "-w", "b", "--json")
    assert _out(ran, "grad.b").tolist() == [12.0]  # 2ab
    ran = _run(cli, folder, {"function": "lambda x, y: x - 2*y", "primals": {"y": 5.0, "x": 1.0}, "wrt": ["y"]}, "grad")
    assert _out(ran, "grad.y").tolist() == -2.0
    # PyYAML's safe_dump sorts keys: w comes before x, the function's order is (x, w)
    text = yaml.safe_dump({"function": "lambda x, w: (x + w) * x**2", "primals": {"x": 3.0, "w": 1.0}})
    assert text.index("w:") < text.index("x:")
    path = folder / "sorted.yaml"
    path.write_text(text)
    assert _out(cli("eval", path, "--json"), "value").tolist() == 36.0
    assert _out(cli("grad", path, "--json"), "grad.x").tolist() == 33.0  # 3x² + 2wx, the first parameter


def test_argnums_count_the_signature_not_the_primals(cli: Cli, folder: Path) -> None:
    spec = {"function": "lambda x, w: x * w**3", "primals": {"w": 2.0, "x": 5.0}, "argnums": [1]}
    assert _out(_run(cli, folder, spec, "grad"), "grad.w").tolist() == 60.0  # 3 x w²
    spec = {"function": "named_fns:f3_kw", "primals": {"z": Z.tolist(), "y": Y.tolist(), "x": X.tolist()}, "argnums": [0]}
    np.testing.assert_allclose(_out(_run(cli, folder, spec, "grad"), "grad.x"), GRADS["x"], rtol=1e-6)


def test_a_defaulted_parameter_may_be_left_out(cli: Cli, folder: Path) -> None:
    spec = {"function": "named_fns:f3_default", "primals": {"y": Y.tolist(), "x": X.tolist()}}
    np.testing.assert_allclose(_out(_run(cli, folder, spec, "grad"), "grad.x"), Y**2 + 3 * 2.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("spec", "args", "where", "message"),
    [
        ({"function": "lambda x: x", "primals": {"x": 1.0, "xx": 2.0}}, [], "primals.xx", "not a parameter"),
        ({"function": "lambda x: x", "primals": {"x": 1.0}}, ["-p", "xx=[1,2]"], "--primal xx", "did you mean 'x'?"),
        ({"function": "lambda x, y: x", "primals": {"x": 1.0}}, [], "primals", "parameter 'y' has no primal"),
        ({"function": "named_fns:f3_kw", "primals": {"x": 1.0, "y": 1.0}}, [], "primals", "parameter 'z' has no primal"),
        ({"function": "x * 2", "primals": {"x": 1.0, "w": 1.0}}, [], "primals.w", "not used by the expression (it uses x)"),
        ({"function": "lambda x: x", "primals": {"x": 1.0}}, ["-p", "x=1", "-p", "x=2"], "--primal x", "given twice"),
        ({"function": "lambda x, w: x", "primals": {"x": 1.0, "w": 1.0}, "argnums": [2]}, [], "argnums", "out of range"),
        ({"function": "named_fns:f3_default", "primals": {"x": 1.0, "y": 1.0}, "argnums": [2]}, [], "argnums", "no primal"),
    ],
)
def test_binding_mistakes_are_bad_input(
    cli: Cli, folder: Path, spec: dict[str, Any], args: list[str], where: str, message: str
) -> None:
    path = folder / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    ran = cli("eval", path, *args)
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr
    assert f"{where}: " in ran.stderr and message in ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "x=1", "-t", "x=2"], "<command line>: --tangent x: tangent 'x' is given twice"),
        (["-t", "x=[1, 0]", "-t", "y=[[1, 0], [0, 1]]"], "--tangent y: a batch of 2, but --tangent x is unbatched"),
    ],
)
def test_tangent_mistakes_name_the_option(cli: Cli, args: list[str], message: str) -> None:
    ran = cli("jvp", "-f", "lambda x, y: x * y", "-p", "x=[1, 2]", "-p", "y=[3, 4]", "-w", "x,y", *args)
    assert ran.exit_code == ExitCode.BAD_INPUT and message in ran.stderr, ran.stderr


def test_star_args_cannot_take_a_primal(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "va.py").write_text("import jax.numpy as jnp\ndef va(x, *rest):\n    return jnp.sum(x)\n")
    spec = tmp_path / "s.yaml"
    spec.write_text("function: va.py:va\nprimals: {x: [1.0], rest: [2.0]}\n")
    ran = cli("grad", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "cannot fill *rest" in ran.stderr
    spec.write_text("function: va.py:va\nprimals: {x: [1.0]}\nargnums: []\n")
    ran = cli("grad", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "argnums: names no argument" in ran.stderr


def test_missing_primal_on_the_command_line_names_the_option(cli: Cli) -> None:
    ran = cli("eval", "-f", "lambda x, y: x", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert ran.stderr.startswith("error: <command line>: --primal: the function's parameter 'y' has no primal")


# --------------------------------------------------------------------------- pytrees

# f(p) = Σ a² b³ with p = {a: [1, 2], b: [3]}: H_aa = 2b³ I, H_ab = 6ab², H_bb = 6b Σa².
PTREE = "lambda p: jnp.sum(p['a']**2 * p['b']**3)"
A, B = np.array([1.0, 2.0]), np.array([3.0])
H_CLOSED = {
    "hessian.p.a.p.a": 2 * B[0] ** 3 * np.eye(2),
    "hessian.p.a.p.b": (6 * A * B[0] ** 2)[:, None],
    "hessian.p.b.p.a": (6 * A * B[0] ** 2)[None, :],
    "hessian.p.b.p.b": np.array([[6 * B[0] * np.sum(A**2)]]),
}
H_FLAT = np.block(
    [[H_CLOSED["hessian.p.a.p.a"], H_CLOSED["hessian.p.a.p.b"]], [H_CLOSED["hessian.p.b.p.a"], H_CLOSED["hessian.p.b.p.b"]]]
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pytree_hessian_in_every_output_path(cli: Cli, tmp_path: Path, dtype: str) -> None:
    base = ("hessian", "-f", PTREE, "-p", "p={a: [1, 2], b: [3]}", "--dtype", dtype)
    ran = cli(*base, "--json", "--summary")
    outputs = {k: v for k, v in ran.outputs().items()}
    assert set(outputs) == set(H_CLOSED)
    for name, want in H_CLOSED.items():
        assert outputs[name].dtype == np.dtype(dtype)
        np.testing.assert_allclose(outputs[name], want, rtol=1e-6)
    eig = np.linalg.eigvalsh(H_FLAT)
    summary = ran.json()["summary"]
    np.testing.assert_allclose([summary["eigenvalues"]["min"], summary["eigenvalues"]["max"]], [eig[0], eig[-1]], rtol=1e-5)
    assert summary["symmetry_defect"] == 0.0
    terminal = cli(*base, "--plot")
    assert terminal.exit_code == ExitCode.OK and "hessian.p.a.p.b" in terminal.stdout and "(2, 1)" in terminal.stdout
    assert "p.a" in terminal.stdout and "p.b" in terminal.stdout  # the heatmap's blocks
    assert cli(*base, "-o", tmp_path / "h.npz", "-q").exit_code == ExitCode.OK
    with np.load(tmp_path / "h.npz") as f:
        assert set(f.files) == set(H_CLOSED)
        np.testing.assert_allclose(f["hessian.p.a.p.b"], H_CLOSED["hessian.p.a.p.b"], rtol=1e-6)
    ran = cli(*base, "-o", tmp_path / "h.npy", "--json")
    assert ran.json()["info"]["npy_layout"] == "flat (inputs, inputs) matrix: p.a, p.b"
    np.testing.assert_allclose(np.load(tmp_path / "h.npy"), H_FLAT, rtol=1e-6)
    assert cli(*base, "-o", tmp_path / "h.json", "-q").exit_code == ExitCode.OK
    assert set(json.loads((tmp_path / "h.json").read_text())["outputs"]) == set(H_CLOSED)
    assert cli(*base, "--plot-file", tmp_path / "h.png", "-q").exit_code == ExitCode.OK
    assert (tmp_path / "h.png").stat().st_size > 1000


# Two pytree arguments, one a nested dict and one a list of arrays:
# f(p, q) = Σ u² w + (q0 · q1) Σ u, p = {u: [1, 2], n: {w: [3, 4]}}, q = [[0.5], [2]].
TWO = "lambda p, q: jnp.sum(p['u']**2 * p['n']['w']) + jnp.sum(q[0]*q[1]) * jnp.sum(p['u'])"
# A list of arrays is written as a list of {value: ...} (a list of lists is one array).
TWO_PRIMALS = {"p": {"u": [1.0, 2.0], "n": {"w": [3.0, 4.0]}}, "q": [{"value": [0.5]}, {"value": [2.0]}]}


def _two_numpy(v: np.ndarray) -> float:
    u, w, q0, q1 = v[0:2], v[2:4], v[4], v[5]
    return float(np.sum(u**2 * w) + q0 * q1 * np.sum(u))


V0 = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 2.0])
TWO_NAMES = ["p.n.w", "p.u", "q[0]", "q[1]"]  # JAX's leaf order: sorted dict keys


def _flat_blocks(v: np.ndarray) -> dict[str, np.ndarray]:
    # the oracle's vector is (u, w, q0, q1); JAX orders p's leaves n.w before u
    return {"p.u": v[0:2], "p.n.w": v[2:4], "q[0]": v[4:5], "q[1]": v[5:6]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nested_and_list_pytrees_against_finite_differences(cli: Cli, tmp_path: Path, dtype: str) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "function": TWO,
                "primals": TWO_PRIMALS,
                "wrt": ["p", "q"],
                "tangents": {"p": {"u": [1.0, 0.0], "n": {"w": [0.0, 1.0]}}, "q": [[1.0], [0.0]]},  # read like q
                "dtype": dtype,
            }
        )
    )
    rtol = 1e-5 if dtype == "float32" else 1e-7
    g = fd_jacobian(lambda v: np.array(_two_numpy(v)), V0)
    grads = _flat_blocks(g)
    out = cli("grad", spec, "--json").outputs()
    for name in TWO_NAMES:
        np.testing.assert_allclose(out[f"grad.{name}"].ravel(), grads[name], rtol=rtol)
    jac = cli("jacobian", spec, "--json", "--mode", "fwd").outputs()
    for name in TWO_NAMES:
        np.testing.assert_allclose(jac[f"jacobian.{name}"].ravel(), grads[name], rtol=rtol)
    h = fd_hessian(_two_numpy, V0)
    blocks = {(a, b): h[np.ix_(*[range(*_span(k)) for k in (a, b)])] for a in TWO_NAMES for b in TWO_NAMES}
    hess = cli("hessian", spec, "--json").outputs()
    assert len(hess) == 16
    for (a, b), want in blocks.items():
        name = f"hessian.{a}.{b}"
        np.testing.assert_allclose(hess[name].reshape(want.shape), want, rtol=1e-4, atol=1e-6)
    tangent = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    hv = h @ tangent
    out = cli("hvp", spec, "--json").outputs()
    for name in TWO_NAMES:
        np.testing.assert_allclose(out[f"hvp.{name}"].ravel(), hv[range(*_span(name))], rtol=1e-4, atol=1e-6)
    assert cli("check", spec).exit_code == ExitCode.OK


def _span(name: str) -> tuple[int, int]:
    return {"p.u": (0, 2), "p.n.w": (2, 4), "q[0]": (4, 5), "q[1]": (5, 6)}[name]


def test_pytree_hessian_in_check_and_run(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "h.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "function": PTREE,
                "primals": {"p": {"a": [1.0, 2.0], "b": [3.0]}},
                "run": ["hessian", "grad"],
                "expect": {name: value.tolist() for name, value in H_CLOSED.items()},
            }
        )
    )
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stdout
    names = [c["name"] for c in ran.json()["specs"][0]["checks"]]
    assert "expect hessian.p.a.p.b" in names and "hessian vs FD of the gradient" in names
    broken = spec.read_text().replace("54.0", "55.0", 1)
    spec.write_text(broken)
    assert cli("check", spec).exit_code == ExitCode.CHECK_FAILED
    ran = cli("run", spec, "-o", tmp_path / "all.npz", "-q")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    with np.load(tmp_path / "all.npz") as f:
        np.testing.assert_allclose(f["h/hessian/hessian.p.b.p.b"], H_CLOSED["hessian.p.b.p.b"])


def test_jacobian_names_the_output_path_then_the_argument_path(cli: Cli) -> None:
    # JAX's nesting, J[output path][argnum][input path], with the argnum replaced by its name
    ran = cli(
        "jacobian", "-f", "lambda p: {'s': jnp.sum(p['a']) * p['b'], 't': p['a'] * p['b']}",
        "-p", "p={a: [1, 2], b: [3]}", "--json", "--mode", "rev",
    )  # fmt: skip
    out = ran.outputs()
    np.testing.assert_allclose(out["jacobian.s.p.a"], [[3.0, 3.0]])  # ds/da = b, shape s + a
    np.testing.assert_allclose(out["jacobian.s.p.b"], [[3.0]])  # ds/db = Σa
    np.testing.assert_allclose(out["jacobian.t.p.a"], [[3.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(out["jacobian.t.p.b"], [[1.0], [2.0]])
    ran = cli("jacobian", "-f", "lambda q: (q[0]*2, q[1]*3)", "-p", "q=[{value: [1.0]}, {value: [2.0]}]", "--json")
    out = ran.outputs()
    assert set(out) == {"jacobian[0].q[0]", "jacobian[0].q[1]", "jacobian[1].q[0]", "jacobian[1].q[1]"}
    assert out["jacobian[0].q[0]"].tolist() == [[2.0]] and out["jacobian[1].q[1]"].tolist() == [[3.0]]
    assert out["jacobian[0].q[1]"].tolist() == [[0.0]]  # output 0 with respect to q[1]


def test_two_leaves_never_share_a_name(cli: Cli, tmp_path: Path) -> None:
    args = ("grad", "-f", "lambda p: jnp.sum(p['a.b']*3) + jnp.sum(p['a']['b']**2)", "-p", 'p={"a.b": [1.0], a: {b: [2.0]}}')
    out = cli(*args, "--json").outputs()
    assert out == {"grad.p.a.b": [4.0], "grad.p['a.b']": [3.0]}
    assert cli(*args, "-o", tmp_path / "g.npz", "-q").exit_code == ExitCode.OK
    with np.load(tmp_path / "g.npz") as f:
        assert sorted(f.files) == ["grad.p.a.b", "grad.p['a.b']"]


# --------------------------------------------------------------------------- dtypes


def test_a_differentiated_value_of_another_dtype_is_refused(cli: Cli) -> None:
    ran = cli("grad", "-f", "jnp.sum(x**2)", "-p", "x={value: [1, 2], dtype: float32}", "--dtype", "float64")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert "--primal x: a float32 value in a float64 run" in ran.stderr
    ran = cli("eval", "-f", "x * y", "-p", "x=1.0", "-p", "y={value: 2, dtype: float64}")
    assert ran.exit_code == ExitCode.BAD_INPUT and "a float64 value in a float32 run" in ran.stderr


def test_dtypes_in_the_json_are_what_was_computed(cli: Cli) -> None:
    ran = cli(
        "grad", "-f", "lambda x, c: jnp.sum(x**2 * c)", "-p", "x=[1, 2]", "-p", "c={value: [1, 3], dtype: float32}",
        "--dtype", "float64", "--json", "--value",
    )  # fmt: skip
    doc = ran.json()
    assert doc["dtype"] == "float64"
    assert doc["outputs"]["grad.x"]["dtype"] == "float64" and doc["outputs"]["grad.x"]["data"] == [2.0, 12.0]
    assert doc["inputs"]["primals.c"]["dtype"] == "float32" and doc["inputs"]["primals.x"]["dtype"] == "float64"


# --------------------------------------------------------------------------- has_aux


def test_has_aux_returns_the_data_beside_the_derivative(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ASSETS)  # a module function is imported from the current folder too
    x = np.array([3.0, 4.0])
    base = ("-f", "named_fns:loss_and_stats", "-p", "x=[3, 4]", "--has-aux", "--json")
    grad = cli("grad", *base, "--value").outputs()
    vjp = cli("vjp", *base).outputs()
    jvp = cli("jvp", *base, "-t", "x=[1, 0]").outputs()
    jac = cli("jacobian", *base).outputs()
    hess = cli("hessian", *base).outputs()
    plain = cli("grad", "-f", "named_fns:loss_and_stats", "-p", "x=[3, 4]")
    for out in (grad, vjp, jac, hess):
        np.testing.assert_allclose(out["aux.norm"], 5.0)
        np.testing.assert_allclose(out["aux.twice"], 2 * x)
    np.testing.assert_allclose(grad["value"], 25.0)
    np.testing.assert_allclose(grad["grad.x"], 2 * x)
    np.testing.assert_allclose(vjp["vjp.x"], 2 * x)
    np.testing.assert_allclose(jvp["jvp"], 6.0)
    np.testing.assert_allclose(jac["jacobian.x"], 2 * x)
    np.testing.assert_allclose(hess["hessian.x.x"], 2 * np.eye(2))
    assert plain.exit_code == ExitCode.BAD_INPUT and "pass --has-aux" in plain.stderr


def test_has_aux_in_a_spec_and_in_check(cli: Cli, tmp_path: Path) -> None:
    shutil.copy(ASSETS / "named_fns.py", tmp_path / "named_fns.py")
    spec = tmp_path / "aux.yaml"
    spec.write_text("function: named_fns:curve_and_aux\nprimals: {t: 0.5}\nhas_aux: true\nexpect: {aux: 5.0}\n")
    out = cli("jacobian", spec, "--json").outputs()
    np.testing.assert_allclose(out["jacobian.t"], [np.cos(0.5), 3 * 0.25], rtol=1e-6)
    assert cli("check", spec).exit_code == ExitCode.OK


def test_has_aux_needs_a_pair(cli: Cli) -> None:
    ran = cli("grad", "-f", "jnp.sum(x)", "-p", "x=[1, 2]", "--has-aux")
    assert ran.exit_code == ExitCode.FUNCTION and "must return a pair (output, auxiliary data)" in ran.stderr


# --------------------------------------------------------------------------- integer arguments


def test_an_integer_argument_outside_wrt_stays_an_integer(cli: Cli) -> None:
    ran = cli("grad", "-f", "lambda x, i: x[i] * 2", "-p", "x=[1, 2, 3]", "-p", "i=1", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.json()["inputs"]["primals.i"]["dtype"] == "int32"
    assert ran.outputs()["grad.x"].tolist() == [0.0, 2.0, 0.0]
    ran = cli("grad", "-f", "lambda x, i: jnp.sum(x[i])", "-p", "x=[1, 2, 3]", "-p", "i={value: [0, 2], dtype: int32}", "--json")
    assert ran.outputs()["grad.x"].tolist() == [1.0, 0.0, 1.0]
    ran = cli("grad", "-f", "lambda x, i: x[i]", "-p", "x=[1, 2]", "-p", "i=1", "--dtype", "float64", "--json")
    assert ran.json()["inputs"]["primals.i"]["dtype"] == "int64"


def test_a_large_integer_argument_warns_of_int32_overflow(cli: Cli) -> None:
    ran = cli("grad", "-f", "lambda x, n: n * n * jnp.sum(x)", "-p", "x=[1, 2]", "-p", "n=100000", "--json")
    assert "primals.n holds 100000 as int32, where products overflow" in ran.json()["warnings"][0]
    ran = cli("grad", "-f", "lambda x, n: n * n * jnp.sum(x)", "-p", "x=[1, 2]", "-p", "n=100000.0", "--json")
    assert ran.json()["warnings"] == [] and ran.outputs()["grad.x"].tolist() == [1e10, 1e10]


def test_differentiating_an_integer_is_refused(cli: Cli) -> None:
    ran = cli("grad", "-f", "lambda x, i: x[i] * 2", "-p", "x=[1, 2, 3]", "-p", "i={value: 1, dtype: int32}", "-w", "i")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert "--primal i: int32 values cannot be differentiated (derivatives need floats" in ran.stderr
    # whole numbers of a differentiated argument are floats, as before
    ran = cli("grad", "-f", "jnp.sum(x**2)", "-p", "x=[1, 2]", "--json")
    assert ran.outputs()["grad.x"].tolist() == [2.0, 4.0]


def test_the_value_constructor_checks_its_dtype(cli: Cli) -> None:
    for value, message in [
        ("{value: 1.5, dtype: int32}", "dtype int32 takes whole numbers"),
        ("{value: 3000000000, dtype: int32}", "3000000000 does not fit int32"),
        ("{value: [true], dtype: float32}", "takes numbers, not true/false"),
    ]:
        ran = cli("eval", "-f", "lambda x, i: x", "-p", "x=1.0", "-p", f"i={value}")
        assert ran.exit_code == ExitCode.BAD_INPUT and message in ran.stderr, ran.stderr


# --------------------------------------------------------------------------- run keeps every result


def test_run_keeps_results_of_the_same_operation_with_other_options(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "r.yaml"
    spec.write_text(
        "function: 'x**2'\nprimals: {x: [1.0, 2.0]}\nrun: [{jacobian: {mode: fwd}}, {jacobian: {mode: rev}}, jacobian]\n"
    )
    ran = cli("run", spec, "-o", tmp_path / "all.npz", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert [r["name"] for r in ran.json()["cases"][0]["results"]] == ["jacobian[mode=fwd]", "jacobian[mode=rev]", "jacobian"]
    with np.load(tmp_path / "all.npz") as f:
        assert sorted(f.files) == ["r/jacobian/jacobian.x", "r/jacobian[mode=fwd]/jacobian.x", "r/jacobian[mode=rev]/jacobian.x"]
        for name in f.files:
            np.testing.assert_array_equal(f[name], np.diag([2.0, 4.0]))
    spec.write_text("function: 'x**2'\nprimals: {x: [1.0]}\nrun: [{jacobian: {mode: fwd}}, {jacobian: {mode: fwd}}]\n")
    ran = cli("run", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "run[1]: jacobian[mode=fwd] is listed twice" in ran.stderr


# --------------------------------------------------------------------------- exit codes


def test_a_bug_of_jaxdiff_is_not_blamed_on_the_function(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from jaxdiff_cli.output import render

    def broken(**kwargs: Any) -> Any:
        raise TypeError("a bug in the renderer")

    monkeypatch.setattr(render, "rich_result", broken)
    ran = cli("eval", "-f", "x * 2", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.INTERNAL == 70
    assert "internal error: TypeError: a bug in the renderer" in ran.stderr and "bug in jaxdiff" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_an_error_raised_in_the_users_code_is_the_functions(cli: Cli, tmp_path: Path) -> None:
    # raised where jaxdiff does not wrap the call (check's float64 differences): still the function's
    shutil.copy(ASSETS / "funcs.py", tmp_path / "funcs.py")
    spec = tmp_path / "s.yaml"
    spec.write_text("function: funcs.py:float32_only\nprimals: {x: [1.0, 2.0]}\n")
    assert cli("jacobian", spec).exit_code == ExitCode.OK
    ran = cli("check", spec, "--json")  # reported with the spec, the other specs still checked
    assert ran.exit_code == ExitCode.FUNCTION, ran.stderr
    error = ran.json()["specs"][0]["error"]
    assert error["exit_code"] == 4
    assert "s.yaml: function: the function failed: ValueError: float64 is not supported here (funcs.py, line" in error["message"]


def test_blame_looks_at_the_innermost_frame_of_user_or_jaxdiff_code() -> None:
    from jaxdiff_cli.errors import FunctionError, InternalError, blame
    from jaxdiff_cli.inputs import expressions

    fn = expressions.compile(expressions.check("lambda x: x['a']", ("x",), "f", is_lambda=True), "f")
    try:
        fn(1.0)
    except TypeError as exc:  # raised in the expression's own frame
        assert isinstance(blame(exc), FunctionError)
    try:
        {}["missing"]
    except KeyError as exc:
        assert isinstance(blame(exc), InternalError)  # raised here, in the test: not the user's function


# --------------------------------------------------------------------------- a non-finite value


@pytest.mark.parametrize("command", ["grad", "jacobian", "hessian", "hvp"])
def test_a_nonfinite_value_is_reported_beside_a_finite_derivative(cli: Cli, command: str) -> None:
    args = (command, "-f", "jnp.sum(jnp.log(x))", "-p", "x=[-1, 2]", "-t", "x=[1, 0]")
    args = args if command == "hvp" else args[:-2]
    ran = cli(*args, "--json")
    assert ran.exit_code == ExitCode.OK
    outputs = ran.outputs()
    derivative = next(v for k, v in outputs.items() if k != "value")
    assert np.isfinite(derivative).all()  # e.g. grad = 1/x = [-1, 0.5]: finite, and meaningless
    assert ran.json()["warnings"] == [
        "value is nan: the function is not finite at this point, so its derivatives there are not meaningful"
    ]
    ran = cli(*args, "--check-finite")
    assert ran.exit_code == ExitCode.NON_FINITE and "value is nan" in ran.stderr


def test_a_nan_scalar_result_is_reported(cli: Cli) -> None:
    ran = cli("eval", "-f", "jnp.log(x)", "-p", "x=-1.0", "--check-finite")
    assert ran.exit_code == ExitCode.NON_FINITE and "value is nan" in ran.stderr

"""jacobian --sparse, hessian --sparse, sparse: true and jaxdiff sparsity, end to end through the CLI.

References: closed forms (a banded residual, a chain of neighbour interactions) and the dense
result of the same command without --sparse.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import CONFIGS, Cli, SpecFile, _coo_dense

pytest.importorskip("asdex")

BANDED = "lambda x: 2 * x - jnp.pad(x, 1)[:-2] - jnp.pad(x, 1)[2:] + x**3"
CHAIN = "jnp.sum((x[1:] - x[:-1]) ** 4) + jnp.sum(jnp.cos(x))"
PDE = CONFIGS / "pde_laplacian2d_sparse.yaml"
X40 = "x={linspace: [-1, 2, 40]}"


def banded_closed(x: np.ndarray) -> np.ndarray:
    return np.diag(2 + 3 * x**2) - np.eye(x.size, k=1) - np.eye(x.size, k=-1)


def chain_closed(x: np.ndarray) -> np.ndarray:
    d = 12 * np.diff(x) ** 2
    return np.diag(-np.cos(x) + np.concatenate([d, [0]]) + np.concatenate([[0], d])) - np.diag(d, 1) - np.diag(d, -1)


def test_sparse_jacobian_json_is_coo_and_equals_the_closed_form(cli: Cli) -> None:
    ran = cli("jacobian", "--sparse", "-f", BANDED, "-p", X40, "--dtype", "float64", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    doc = ran.json()
    out = doc["outputs"]["jacobian"]
    assert list(out) == ["format", "shape", "dtype", "row", "col", "data"] and out["format"] == "coo"
    assert out["shape"] == [40, 40] and out["dtype"] == "float64" and len(out["row"]) == len(out["data"]) == 118
    np.testing.assert_allclose(_coo_dense(out), banded_closed(np.linspace(-1, 2, 40)), rtol=1e-14)
    info = doc["info"]
    assert info["mode"] == "fwd" and info["auto"] is True
    assert info["reason"] == "pattern 118 nonzeros; 3 column colors (JVPs) vs 3 row colors (VJPs): 3 JVPs instead of 40"
    assert info["sparse"]["colors"] == 3 and info["sparse"]["coloring"] == "column" and info["sparse"]["nnz"] == 118
    assert info["blocks"] == {"rows": [["f", 40]], "columns": [["x", 40]]}


def test_sparse_equals_dense_in_both_modes_and_dtypes(cli: Cli) -> None:
    for dtype in ("float32", "float64"):
        dense = cli("jacobian", "-f", BANDED, "-p", X40, "--dtype", dtype, "--json").outputs()["jacobian.x"]
        for mode in ("fwd", "rev"):
            ran = cli("jacobian", "--sparse", "--mode", mode, "-f", BANDED, "-p", X40, "--dtype", dtype, "--json")
            assert ran.exit_code == ExitCode.OK, ran.stderr
            assert ran.json()["info"]["sparse"]["coloring"] == {"fwd": "column", "rev": "row"}[mode]
            sparse = ran.outputs()["jacobian"]
            assert sparse.dtype == np.dtype(dtype)
            np.testing.assert_allclose(sparse, dense, rtol=1e-6 if dtype == "float32" else 1e-14)


def test_sparse_hessian_is_star_colored_and_equals_the_closed_form(cli: Cli) -> None:
    ran = cli("hessian", "--sparse", "-f", CHAIN, "-p", X40, "--dtype", "float64", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    info = ran.json()["info"]
    assert info["mode"] == "fwd-rev" and info["sparse"]["coloring"] == "star" and info["sparse"]["colors"] <= 4
    np.testing.assert_allclose(ran.outputs()["hessian"], chain_closed(np.linspace(-1, 2, 40)), rtol=1e-12, atol=1e-12)
    ran = cli("hessian", "--sparse", "-f", BANDED, "-p", X40)
    assert ran.exit_code == ExitCode.BAD_INPUT and "hessian needs a function with a scalar output" in ran.stderr


def test_several_arguments_show_their_blocks(cli: Cli) -> None:
    ran = cli("jacobian", "--sparse", "-f", "lambda x, w: x * w[:3] + jnp.sum(w)", "-p", "x=[1,2,3]", "-p", "w=[4,5,6,7]",
              "-w", "x,w", "--json")  # fmt: skip
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.json()["info"]["blocks"] == {"rows": [["f", 3]], "columns": [["x", 3], ["w", 4]]}
    x, w = np.array([1, 2, 3.0]), np.array([4, 5, 6, 7.0])
    expected = np.hstack([np.diag(w[:3]), np.hstack([np.diag(x), np.zeros((3, 1))]) + 1])
    np.testing.assert_allclose(ran.outputs()["jacobian"], expected)
    ran = cli("jacobian", "--sparse", "-f", "lambda x, w: x * w[:3] + jnp.sum(w)", "-p", "x=[1,2,3]", "-p", "w=[4,5,6,7]",
              "-w", "x,w")  # fmt: skip
    assert "rows: f [3]; columns: x [3], w [4]" in " ".join(ran.stdout.split()) and "  x  w\nf ⠑⠼│⠿⠇" in ran.stdout


def test_the_terminal_shows_nnz_density_colors_and_a_spy_picture(cli: Cli) -> None:
    ran = cli("jacobian", "--sparse", "-f", BANDED, "-p", X40)
    assert ran.exit_code == ExitCode.OK, ran.stderr
    text = " ".join(ran.stdout.split())
    for part in ("nnz 118 of 1,600 (density 7.38%)", "3 colors, column coloring: 3 JVPs instead of 40", "spy: jacobian 40x40"):
        assert part in text
    assert "⠻⣦⡀" in ran.stdout  # the band, in braille dots


def test_the_spy_names_dict_blocks_apart_and_info_has_no_python_bools(cli: Cli) -> None:
    f = "lambda p: jnp.sum(p['a']**2 * p['b'][0]) + jnp.sum(p['b']**3)"
    ran = cli("hessian", "--sparse", "-f", f, "-p", "p={a: [1.0, 2.0], b: [1.0, 2.0, 3.0]}")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    header = next(line for line in ran.stdout.splitlines() if line.lstrip().startswith("p."))
    assert header.split() == ["p.b"]  # p.a (one character wide) is left out, never run into p.b ("p.ap.b")
    ran = cli("jacobian", "--sparse", "-f", BANDED, "-p", X40)
    assert "True" not in ran.stdout and "auto chose fwd (pattern 118 nonzeros" in " ".join(ran.stdout.split())
    ran = cli("jacobian", "--holomorphic", "-f", "z**2", "-p", "z=[1+1j]", "--dtype", "complex64")
    assert "True" not in ran.stdout and "· holomorphic" in ran.stdout


def test_help_lists_the_sparse_choices_and_files(cli: Cli) -> None:
    text = cli("sparsity", "--help").stdout
    assert "--op [jacobian|hessian]" in text and "--mode [fwd|rev|auto]" in text
    for op in ("jacobian", "hessian"):
        help_o = " ".join(cli(op, "--help").stdout.split())
        assert ".mtx (Matrix Market: its nonzeros)" in help_o and "makes .npz scipy's sparse format" in help_o
        assert "chosen by itself when the dense matrix would not fit in memory" in help_o
    assert ".mtx" not in cli("grad", "--help").stdout


def test_a_dense_jacobian_of_several_blocks_names_them_in_matrix_market(cli: Cli, tmp_path: Path) -> None:
    import scipy.io

    f = "lambda x, w: x * w[:3] + jnp.sum(w)"
    for extra in ([], ["--sparse"]):
        ran = cli(
            "jacobian", "-f", f, "-p", "x=[1,2,3]", "-p", "w=[4,5,6,7]", "-w", "x,w", "-o", tmp_path / "J.mtx", "-q", *extra
        )
        assert ran.exit_code == ExitCode.OK, ran.stderr
        text = (tmp_path / "J.mtx").read_text()
        assert "; rows: f [3]; columns: x [3], w [4]" in text.splitlines()[1], extra
        x, w = np.array([1, 2, 3.0]), np.array([4, 5, 6, 7.0])
        expected = np.hstack([np.diag(w[:3]), np.hstack([np.diag(x), np.zeros((3, 1))]) + 1])
        np.testing.assert_allclose(scipy.io.mmread(tmp_path / "J.mtx").toarray(), expected)


def test_sparse_files_read_back_with_scipy(cli: Cli, tmp_path: Path) -> None:
    import scipy.io
    import scipy.sparse

    closed = banded_closed(np.linspace(-1, 2, 40))
    for name in ("J.npz", "J.mtx", "J.npy", "J.json"):
        ran = cli("jacobian", "--sparse", "-f", BANDED, "-p", X40, "--dtype", "float64", "-o", tmp_path / name, "-q")
        assert ran.exit_code == ExitCode.OK, ran.stderr
    loaded = scipy.sparse.load_npz(tmp_path / "J.npz")
    assert loaded.format == "coo" and loaded.nnz == 118 and loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded.toarray(), closed)
    np.testing.assert_array_equal(scipy.io.mmread(tmp_path / "J.mtx").toarray(), closed)
    np.testing.assert_array_equal(np.load(tmp_path / "J.npy"), closed)  # one block: the dense result's shape
    np.testing.assert_array_equal(_coo_dense(json.loads((tmp_path / "J.json").read_text())["outputs"]["jacobian"]), closed)


def test_npy_densifies_only_when_it_fits(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jaxdiff_cli.engine.chunking.free_bytes", lambda device: 16_000)  # room for a 40x40 only
    ran = cli("jacobian", "--sparse", "-f", BANDED, "-p", "x={linspace: [-1, 2, 80]}", "-o", tmp_path / "J.npy")
    assert (
        ran.exit_code == ExitCode.USAGE
        and "the dense jacobian would have 6,400 entries" in ran.stderr
        and "FILE.npz" in ran.stderr
    )
    assert not (tmp_path / "J.npy").exists()


def test_auto_goes_sparse_when_the_dense_matrix_cannot_fit(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jaxdiff_cli.engine.chunking.free_bytes", lambda device: 4000)  # a 40x40 float32 needs 6400
    ran = cli("jacobian", "-f", BANDED, "-p", X40, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    info = ran.json()["info"]
    assert info["reason"] == (
        "the dense jacobian needs 6.2 KiB, more than half of the 3.9 KiB free: computed sparse;"
        " pattern 118 nonzeros; 3 column colors (JVPs) vs 3 row colors (VJPs): 3 JVPs instead of 40"
    )
    assert ran.json()["outputs"]["jacobian"]["format"] == "coo"
    ran = cli("hessian", "-f", CHAIN, "-p", X40, "--json")
    assert ran.exit_code == ExitCode.OK and ran.json()["info"]["sparse"]["coloring"] == "star"
    ran = cli("jacobian", "-f", BANDED, "-p", X40, "--mode", "rev")  # a dense mode asked for: refused early
    assert ran.exit_code == ExitCode.USAGE
    assert "the dense jacobian needs 6.2 KiB" in ran.stderr and "add --sparse (sparse: true)" in ran.stderr
    monkeypatch.setitem(sys.modules, "asdex", None)
    ran = cli("jacobian", "-f", BANDED, "-p", X40)
    assert ran.exit_code == ExitCode.USAGE and "pip install 'jaxdiff[sparse]'" in ran.stderr


# The user's report: a holomorphic z³ + exp(z) at a complex point, with sparse: true.
COMPLEX = """\
function: "lambda z: z**3 + jnp.exp(z)"
primals:
  z: {re: [1.0, 2.0, 0.5], im: [0.5, -1.0, 0.0]}
dtype: complex128
holomorphic: true
"""
REAL_ONLY = "sparse Jacobians and Hessians are of real functions; this one has complex inputs (complex128)"


def test_complex_values_are_refused_sparse_where_sparse_was_asked_for(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    spec = spec_file(COMPLEX + "sparse: true\n")
    for args in (["jacobian", spec], ["jacobian", spec, "--holomorphic", "--mode", "rev"], ["hessian", spec]):
        ran = cli(*args)
        assert ran.exit_code == ExitCode.BAD_INPUT, (args, ran.stderr)
        assert ran.stderr == f"error: {spec}: sparse: {REAL_ONLY} (drop 'sparse: true' to compute it densely)\n"
    # check refuses it too, instead of passing with no sparse row
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT and REAL_ONLY in ran.json()["specs"][0]["error"]["message"]
    assert ran.json()["specs"][0]["error"]["key"] == "sparse"
    z = "z=[1+0.5j, 2-1j, 0.5]"
    for op, f in (("jacobian", "z**3 + jnp.exp(z)"), ("hessian", "jnp.sum(z**3)")):
        ran = cli(op, "--sparse", "--holomorphic", "-f", f, "-p", z, "--dtype", "complex128")
        assert ran.exit_code == ExitCode.USAGE and ran.stderr.startswith(f"error: --sparse: {REAL_ONLY} (drop --sparse"), (
            ran.stderr
        )
    ran = cli("jacobian", "--sparse", "-f", "jnp.exp(1j * x)", "-p", "x=[1.0, 2.0]")  # real in, complex out
    assert ran.exit_code == ExitCode.USAGE and "this one has complex outputs (complex64)" in ran.stderr
    run = spec_file(COMPLEX + "run: [jacobian, {jacobian: {sparse: true}}]\n", "run.yaml")
    ran = cli("run", run)
    assert ran.exit_code == ExitCode.BAD_INPUT and f"run.yaml: run[1].jacobian.sparse: {REAL_ONLY}" in ran.stderr
    ran = cli("sparsity", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "sparsity patterns are of real functions' Jacobians and Hessians" in ran.stderr
    # Dense, as the refusal suggests: f'(z) = 3z² + exp(z) on the diagonal.
    dense = spec_file(COMPLEX, "dense.yaml")
    ran = cli("jacobian", dense, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    zs = np.array([1 + 0.5j, 2 - 1j, 0.5])
    parts = ran.json()["outputs"]["jacobian.z"]["data"]
    np.testing.assert_allclose(np.add(parts["real"], 1j * np.asarray(parts["imag"])), np.diag(3 * zs**2 + np.exp(zs)), rtol=1e-13)


def test_auto_never_sends_a_complex_problem_to_sparse(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: SpecFile
) -> None:
    from jaxdiff_cli.engine import sparse

    def no_detection(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a complex problem reached sparsity detection")

    monkeypatch.setattr(sparse, "detect", no_detection)
    monkeypatch.setattr("jaxdiff_cli.engine.chunking.free_bytes", lambda device: 64)  # a 3x3 complex128 needs 144
    spec = spec_file(COMPLEX)
    ran = cli("jacobian", spec)
    assert ran.exit_code == ExitCode.USAGE
    assert "the dense jacobian needs 144 bytes, more than half of the 64 bytes free" in ran.stderr
    assert "a sparse jacobian is of a real function, and this one has complex inputs (complex128)" in ran.stderr
    ran = cli("hessian", "--holomorphic", "-f", "jnp.sum(z**3)", "-p", "z=[1+1j, 2, 3, 4]", "--dtype", "complex128")
    assert ran.exit_code == ExitCode.USAGE and "hvp computes products" in ran.stderr


def test_without_asdex_sparse_says_how_to_install_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: SpecFile
) -> None:
    monkeypatch.setitem(sys.modules, "asdex", None)  # as if it were not installed
    spec = spec_file(f"function: '{BANDED}'\nprimals: {{x: [1.0, 2.0]}}\nsparse: true\n")
    for args in (["jacobian", "--sparse", "-f", BANDED, "-p", "x=[1,2]"], ["hessian", "--sparse", "-f", CHAIN, "-p", "x=[1,2]"],
                 ["sparsity", "-f", BANDED, "-p", "x=[1,2]"], ["jacobian", spec]):  # fmt: skip
        ran = cli(*args)
        assert ran.exit_code == ExitCode.USAGE, (args, ran.stderr)
        assert "need asdex, which is not installed (pip install 'jaxdiff[sparse]'" in ran.stderr


def test_a_function_asdex_cannot_read_is_computed_densely_with_a_warning(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    fft = "jnp.abs(jnp.fft.fft(x))"
    ran = cli("jacobian", "--sparse", "-f", fft, "-p", "x=[1,2,3,4]", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    doc = ran.json()
    note = "not sparse: asdex has no sparsity rule for the primitive 'fft': computed densely instead"
    assert note in doc["warnings"] and note in ran.stderr
    assert "jacobian.x" in doc["outputs"]  # the dense result
    monkeypatch.setattr("jaxdiff_cli.engine.chunking.free_bytes", lambda device: 64)  # and dense cannot fit either
    ran = cli("jacobian", "--sparse", "-f", fft, "-p", "x=[1,2,3,4]")
    assert ran.exit_code == ExitCode.FUNCTION
    assert "cannot find the sparsity pattern of the jacobian: asdex has no sparsity rule for the primitive 'fft'" in ran.stderr


def test_a_second_run_reads_the_pattern_from_the_cache(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(tmp_path / "cache"))
    args = ("jacobian", "--sparse", "-f", BANDED, "-p", X40, "--json")
    first, second = cli(*args).json(), cli(*args).json()
    assert not first["info"]["sparse"]["cached"] and second["info"]["sparse"]["cached"]
    assert first["outputs"] == second["outputs"]
    assert any((tmp_path / "cache" / "sparsity").iterdir())
    assert not cli(*args, "--no-cache").json()["info"]["sparse"]["cached"]
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(tmp_path / "other"))
    assert cli(*args, "--no-cache").exit_code == ExitCode.OK
    assert not (tmp_path / "other").exists()


def test_sparse_runs_on_one_device(cli: Cli) -> None:
    ran = cli("jacobian", "--sparse", "-f", BANDED, "-p", "x=[1,2]", "--devices", "all")
    assert ran.exit_code == ExitCode.USAGE and "a sparse Jacobian or Hessian runs on one device" in ran.stderr


def test_sparsity_shows_the_pattern_and_coloring_without_values(cli: Cli, tmp_path: Path) -> None:
    import scipy.io
    import scipy.sparse

    ran = cli("sparsity", PDE)
    assert ran.exit_code == ExitCode.OK, ran.stderr
    text = " ".join(ran.stdout.split())
    assert "nnz 33 of 81 (density 40.7%)" in text and "column coloring" in text and "spy: jacobian 9x9" in text
    doc = cli("sparsity", PDE, "--json").json()
    assert doc["command"] == "sparsity" and doc["op"] == "jacobian"
    assert set(doc["pattern"]) == {"format", "shape", "row", "col"}  # no values
    pattern = np.zeros((9, 9), bool)
    pattern[doc["pattern"]["row"], doc["pattern"]["col"]] = True
    closed = (np.abs(np.kron(np.eye(3), np.eye(3, k=1) + np.eye(3, k=-1)) + np.kron(np.eye(3, k=1) + np.eye(3, k=-1), np.eye(3)))
              + np.eye(9)) > 0  # fmt: skip
    np.testing.assert_array_equal(pattern, closed)
    colors = np.asarray(doc["coloring"]["assignment"])
    assert doc["coloring"]["colors"] == len(set(colors.tolist()))
    for row in pattern:  # a valid column coloring: the columns of one row have distinct colors
        assert len(set(colors[row].tolist())) == int(row.sum())
    for name in ("p.npz", "p.mtx", "p.json"):
        assert cli("sparsity", PDE, "-o", tmp_path / name, "-q").exit_code == ExitCode.OK
    np.testing.assert_array_equal(scipy.sparse.load_npz(tmp_path / "p.npz").toarray() != 0, closed)
    np.testing.assert_array_equal(scipy.io.mmread(tmp_path / "p.mtx").toarray() != 0, closed)
    assert json.loads((tmp_path / "p.json").read_text())["pattern"] == doc["pattern"]
    ran = cli("sparsity", "--op", "hessian", "-f", CHAIN, "-p", X40, "--plot-file", tmp_path / "h.png")
    assert ran.exit_code == ExitCode.OK and "star (symmetric) coloring" in " ".join(ran.stdout.split())
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    ran = cli("sparsity", "--op", "hvp", PDE)
    assert ran.exit_code == ExitCode.USAGE and "--op: no sparsity pattern of 'hvp'" in ran.stderr
    ran = cli("sparsity", PDE, "-o", tmp_path / "p.txt")
    assert ran.exit_code == ExitCode.BAD_INPUT and "unknown output format '.txt'" in ran.stderr


@pytest.mark.slow
def test_check_compares_a_sparse_result_with_dense_and_finite_differences(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: SpecFile
) -> None:
    doc = cli("check", PDE, "--json").json()
    names = {c["name"]: c["passed"] for c in doc["specs"][0]["checks"]}
    assert doc["passed"] and names["sparse jacobian vs dense (6 JVPs instead of 9)"]
    assert names["sparse jacobian vs FD (6 random directions)"] and names["expect jacobian"]
    big = spec_file(f"function: '{BANDED}'\nprimals: {{x: {{linspace: [-1, 2, 1100]}}}}\nsparse: true\n")
    doc = cli("check", big, "--json").json()
    names = {c["name"]: c["passed"] for c in doc["specs"][0]["checks"]}
    assert doc["passed"] and "sparse jacobian vs FD (6 random directions)" in names
    assert not any("vs dense" in n for n in names)  # 1100 x 1100 is past SPARSE_DENSE_MAX: FD only
    hess = spec_file(f"function: '{CHAIN}'\nprimals: {{x: {{linspace: [-1, 2, 12]}}}}\nsparse: true\n", "h.yaml")
    doc = cli("check", hess, "--json").json()
    names = {c["name"]: c["passed"] for c in doc["specs"][0]["checks"]}
    assert doc["passed"] and names["sparse hessian vs FD (6 random directions)"] and "sparse hessian vs dense" in " ".join(names)
    # not vacuous: a sparse result off by 0.1% fails both
    from jaxdiff_cli.engine.sparse import SparseMatrix

    monkeypatch.setattr(SparseMatrix, "with_data", lambda self, data: replace(self, data=data * 1.001))
    ran = cli("check", PDE, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    failed = {c["name"] for c in ran.json()["specs"][0]["checks"] if not c["passed"]}
    both = {"sparse jacobian vs dense (6 JVPs instead of 9)", "sparse jacobian vs FD (6 random directions)"}
    assert failed == {"expect jacobian", *both}


def test_run_with_sparse_steps(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    run = "run: [{jacobian: {sparse: true}}, {jacobian: {mode: fwd}}]\n"
    spec = spec_file(f"function: '{BANDED}'\nprimals: {{x: {{linspace: [0, 1, 10]}}}}\n" + run)
    ran = cli("run", spec, "--json", "-o", tmp_path / "all.npz")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    results = ran.json()["cases"][0]["results"]
    assert [r["name"] for r in results] == ["jacobian[sparse=true]", "jacobian[mode=fwd]"]
    sparse = _coo_dense(results[0]["outputs"]["jacobian"])
    np.testing.assert_array_equal(sparse, np.asarray(results[1]["outputs"]["jacobian.x"]["data"], np.float32))
    with np.load(tmp_path / "all.npz") as f:
        assert {"spec/jacobian[sparse=true]/jacobian.row", "spec/jacobian[sparse=true]/jacobian.data"} <= set(f.files)
    bad = spec_file(f"function: '{BANDED}'\nprimals: {{x: [1.0]}}\nrun: [{{jacobian: {{sparse: 1}}}}]\n", "bad.yaml")
    ran = cli("run", bad)
    assert ran.exit_code == ExitCode.BAD_INPUT and "run[0].jacobian.sparse: true or false" in ran.stderr


def test_sparse_pictures_and_summary(cli: Cli, tmp_path: Path) -> None:
    ran = cli("hessian", "--sparse", "-f", CHAIN, "-p", X40, "--plot", "--summary", "--plot-file", tmp_path / "h.png")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert "legend:" in ran.stdout and "118 nonzeros in the pattern" in " ".join(ran.stdout.split())
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    ran = cli("hessian", "--sparse", "-f", CHAIN, "-p", X40, "--summary", "--json")
    assert ran.json()["summary"]["nnz"] == 118 and ran.json()["summary"]["symmetry_defect"] == 0.0


SPECS = sorted(p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("cases_"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SPECS)
def test_sparse_equals_dense_on_every_config(cli: Cli, tmp_path: Path, name: str) -> None:
    """jacobian --sparse (and hessian --sparse for a scalar f) against the dense command, in the spec's dtype
    and in float64: module and file functions, parameter dicts, several arguments, batched inputs."""
    path = CONFIGS / name
    for dtype in ("", "float64"):
        extra = ["--dtype", dtype] if dtype else []
        for op in ("jacobian", "hessian"):
            dense = cli(op, path, *extra, "-o", tmp_path / "dense.npy", "-q")
            skip = ("scalar output", "float32", "unknown mode")  # not a scalar f; float32 data; an hvp mode in the spec
            if dense.exit_code == ExitCode.BAD_INPUT and any(why in dense.stderr for why in skip):
                continue
            assert dense.exit_code == ExitCode.OK, (op, dtype, dense.stderr)
            sparse = cli(op, path, *extra, "--sparse", "-o", tmp_path / "sparse.npy", "-q")
            assert sparse.exit_code == ExitCode.OK, (op, dtype, sparse.stderr)
            want, got = np.load(tmp_path / "dense.npy"), np.load(tmp_path / "sparse.npy")
            assert got.shape == want.shape and got.dtype == want.dtype
            tol = 1e-12 if got.dtype == np.float64 else 2e-5
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * float(np.max(np.abs(want), initial=1.0)))

"""expect: of Jacobians and Hessians whichever form they take: one expect block with sparse: on and
off, golden values of a sparse result (check --update), and scipy sparse .npz files as expected values.

References: closed forms written by hand, and matrices built with NumPy and written with scipy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from jaxdiff_cli.errors import ExitCode

from ..conftest import Cli

pytest.importorskip("asdex")

# f(q, w) = (q0 * w, sum(q1²) * w) at q0 = [1, 2], q1 = [3], w = [2, -1]: every block in closed form.
TWO = """\
function: "lambda q, w: (q[0] * w, jnp.sum(q[1]**2) * w)"
primals:
  q: [{value: [1.0, 2.0]}, {value: [3.0]}]
  w: [2.0, -1.0]
wrt: [q, w]
dtype: float64
sparse: SPARSE
expect:
  jacobian[0].q[0]: [[2.0, 0.0], [0.0, -1.0]]    # diag(w)
  jacobian[0].q[1]: [[0.0], [0.0]]
  jacobian[0].w: [[1.0, 0.0], [0.0, 2.0]]       # diag(q0)
  jacobian[1].q[0]: [[0.0, 0.0], [0.0, 0.0]]
  jacobian[1].q[1]: [[12.0], [-6.0]]            # 2 q1 w
  jacobian[1].w: [[9.0, 0.0], [0.0, 9.0]]       # sum(q1²) I
  jacobian: [[2, 0, 0, 1, 0], [0, -1, 0, 0, 2], [0, 0, 12, 9, 0], [0, 0, -6, 0, 9]]
"""
# f(p) = sum(a² b0) + sum(b³) at a = [1, 2], b = [1, 2, 3].
DICT = """\
function: "lambda p: jnp.sum(p['a']**2 * p['b'][0]) + jnp.sum(p['b']**3)"
primals:
  p: {a: [1.0, 2.0], b: [1.0, 2.0, 3.0]}
dtype: float64
sparse: SPARSE
expect:
  hessian.p.a.p.a: [[2.0, 0.0], [0.0, 2.0]]              # 2 b0 I
  hessian.p.a.p.b: [[2.0, 0.0, 0.0], [4.0, 0.0, 0.0]]    # ∂²/∂a_i∂b0 = 2 a_i
  hessian.p.b.p.a: [[2.0, 4.0], [0.0, 0.0], [0.0, 0.0]]
  hessian.p.b.p.b: [[6.0, 0.0, 0.0], [0.0, 12.0, 0.0], [0.0, 0.0, 18.0]]   # 6 b
"""
BANDED = "lambda x: 2 * x - jnp.pad(x, 1)[:-2] - jnp.pad(x, 1)[2:] + x**3"


def banded_closed(x: np.ndarray) -> np.ndarray:
    return np.diag(2 + 3 * x**2) - np.eye(x.size, k=1) - np.eye(x.size, k=-1)


def checks(ran: Any) -> dict[str, Any]:
    return {c["name"]: c for c in ran.json()["specs"][0]["checks"]}


@pytest.mark.parametrize("text", [TWO, DICT], ids=["jacobian blocks", "hessian blocks"])
def test_one_expect_block_holds_with_sparse_on_and_off(cli: Cli, tmp_path: Path, text: str) -> None:
    for sparse in ("true", "false"):
        spec = tmp_path / f"{sparse}.yaml"
        spec.write_text(text.replace("SPARSE", sparse))
        ran = cli("check", spec, "--json")
        assert ran.exit_code == ExitCode.OK, (sparse, ran.stdout, ran.stderr)
        found = checks(ran)
        expected = [k for k in yaml.safe_load(text)["expect"]]
        assert all(found[f"expect {name}"]["passed"] for name in expected)
        assert any(n.startswith("sparse ") for n in found) == (sparse == "true")  # it did go sparse
        # Not vacuous: one wrong entry of a block fails, named in the block's own shape, both ways.
        wrong = text.replace("SPARSE", sparse).replace("[[12.0], [-6.0]]", "[[12.0], [-6.5]]")
        wrong = wrong.replace("[4.0, 0.0, 0.0]]    #", "[4.5, 0.0, 0.0]]    #")
        spec.write_text(wrong)
        ran = cli("check", spec, "--json")
        assert ran.exit_code == ExitCode.CHECK_FAILED
        failed = {n: c for n, c in checks(ran).items() if not c["passed"]}
        name = "expect jacobian[1].q[1]" if "q[1]" in text else "expect hessian.p.a.p.b"
        assert list(failed) == [name]
        assert failed[name]["worst"]["index"] == [1, 0]


def test_the_sparse_names_are_the_dense_ones_and_a_misspelt_one_is_named(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(TWO.replace("SPARSE", "true") + "  jacobian[0].x: [[1.0]]\n")
    ran = cli("check", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert "expect.jacobian[0].x: no output named 'jacobian[0].x' (did you mean 'jacobian[0].w'?)" in " ".join(ran.stdout.split())


@pytest.mark.slow
def test_check_update_records_a_large_sparse_result_that_check_reads_back(cli: Cli, tmp_path: Path) -> None:
    """1100 x 1100: past the 10⁶ dense entries --update records, so only its nonzeros can be recorded."""
    import scipy.sparse

    spec = tmp_path / "big.yaml"
    spec.write_text(f"function: '{BANDED}'\nprimals: {{x: {{linspace: [-1, 2, 1100]}}}}\ndtype: float64\nsparse: true\n")
    ran = cli("check", "--update", spec, "--json")
    assert ran.exit_code == ExitCode.OK, ran.stdout
    doc = ran.json()["specs"][0]
    golden = tmp_path / "big.golden.jacobian.npz"
    assert str(golden) in doc["updated"] and doc["not_recorded"] == []
    assert yaml.safe_load(spec.read_text())["expect"]["jacobian"] == {"file": "big.golden.jacobian.npz"}
    recorded = scipy.sparse.load_npz(golden)  # scipy's own reader
    assert recorded.nnz == 3 * 1100 - 2
    np.testing.assert_allclose(recorded.toarray(), banded_closed(np.linspace(-1, 2, 1100)), rtol=1e-14)
    ran = cli("check", spec, "--json")
    assert (
        ran.exit_code == ExitCode.OK and checks(ran)["expect jacobian"]["detail"] == "3298 entries on the union of both patterns"
    )
    # A changed derivative fails, found at its entry.
    arrays = dict(np.load(golden))
    arrays["data"] = arrays["data"].copy()
    arrays["data"][5] += 1e-3  # entry 5, row-major: (0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1)
    np.savez(golden, **arrays)
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED and checks(ran)["expect jacobian"]["worst"]["index"] == [2, 1]
    # Dense, the same matrix is too large to record: said, with what would record it.
    spec.write_text(f"function: '{BANDED}'\nprimals: {{x: {{linspace: [-1, 2, 1100]}}}}\ndtype: float64\n")
    ran = cli("check", "--update", spec)
    assert ran.exit_code == ExitCode.OK
    text = " ".join(ran.stdout.split())
    assert "not recorded: jacobian: 1.2e6 dense entries, more than the 1.0e6 dense entries recorded" in text
    assert "(sparse: true records its nonzeros)" in text
    assert "jacobian" not in yaml.safe_load(spec.read_text())["expect"]


def test_jaxdiffs_own_sparse_npz_and_scipys_are_expected_values(cli: Cli, tmp_path: Path) -> None:
    import scipy.sparse

    x = np.linspace(-1, 2, 30)
    head = f"function: '{BANDED}'\nprimals: {{x: {{linspace: [-1, 2, 30]}}}}\ndtype: float64\n"
    ran = cli(
        "jacobian", "--sparse", "-f", BANDED, "-p", "x={linspace: [-1, 2, 30]}", "--dtype", "float64", "-o", tmp_path / "J.npz"
    )
    assert ran.exit_code == ExitCode.OK, ran.stderr
    closed = banded_closed(x)
    scipy.sparse.save_npz(tmp_path / "csr.npz", scipy.sparse.csr_matrix(closed))
    scipy.sparse.save_npz(tmp_path / "csc.npz", scipy.sparse.csc_matrix(closed))
    wrong = closed.copy()
    wrong[4, 5] = 0.0  # an entry missing from the expected pattern is compared with zero
    scipy.sparse.save_npz(tmp_path / "wrong.npz", scipy.sparse.coo_matrix(wrong))
    for sparse in ("true", "false"):
        spec = tmp_path / "s.yaml"
        spec.write_text(head + f"sparse: {sparse}\nexpect:\n  jacobian: {{file: J.npz}}\n  jacobian.x: {{file: csr.npz}}\n")
        ran = cli("check", spec, "--json")
        assert ran.exit_code == ExitCode.OK, (sparse, ran.stdout)
        assert {"expect jacobian", "expect jacobian.x"} <= {n for n, c in checks(ran).items() if c["passed"]}
        spec.write_text(head + f"sparse: {sparse}\nexpect:\n  jacobian.x: {{file: csc.npz}}\n  jacobian: {{file: wrong.npz}}\n")
        ran = cli("check", spec, "--json")
        assert ran.exit_code == ExitCode.CHECK_FAILED
        failed = {n: c for n, c in checks(ran).items() if not c["passed"]}
        assert list(failed) == ["expect jacobian"] and failed["expect jacobian"]["worst"]["index"] == [4, 5]


def test_a_sparse_file_that_cannot_be_an_expected_value_says_what_it_is(cli: Cli, tmp_path: Path) -> None:
    import scipy.sparse

    head = f"function: '{BANDED}'\nprimals: {{x: [1.0, 2.0]}}\nsparse: true\n"
    scipy.sparse.save_npz(tmp_path / "bsr.npz", scipy.sparse.bsr_matrix(np.eye(2)))
    scipy.sparse.save_npz(tmp_path / "coo.npz", scipy.sparse.coo_matrix(np.eye(2)))
    spec = tmp_path / "s.yaml"
    cases = {
        "jacobian: {file: bsr.npz}": (
            "expect.jacobian.file: bsr.npz: a scipy sparse matrix in 'bsr' format; jaxdiff reads coo, csr, csc"
        ),
        "jacobian: {value: {file: coo.npz}, index: [0]}": "expect.jacobian.index: a sparse expected value is compared whole",
        "jacobian: {file: huge.npz}": "huge.npz: its shape 4294967296x4294967296 is larger than any Jacobian jaxdiff computes",
    }
    # A hostile header: entries are keyed row * n + col, which such a shape would overflow.
    shape = np.array([2**32, 2**32], np.int64)
    np.savez(tmp_path / "huge.npz", format=np.bytes_(b"coo"), shape=shape, row=[0], col=[0], data=[1.0])
    for entry, message in cases.items():
        spec.write_text(head + f"expect:\n  {entry}\n")
        ran = cli("check", spec)
        assert ran.exit_code == ExitCode.BAD_INPUT and message in " ".join(ran.stdout.split()), ran.stdout
    ran = cli("eval", "-f", "x", "-p", f"x={{file: {tmp_path / 'coo.npz'}}}")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert "coo.npz holds a scipy sparse matrix (scipy.sparse.save_npz), not arrays by name" in ran.stderr


def test_sparse_files_read_with_numpy_alone_equal_scipys_reading(tmp_path: Path) -> None:
    import scipy.sparse

    from jaxdiff_cli.errors import SpecError
    from jaxdiff_cli.inputs.sparsefile import from_arrays, is_sparse

    rng = np.random.default_rng(0)
    dense = np.where(rng.random((7, 5)) < 0.3, rng.standard_normal((7, 5)), 0.0)
    for fmt in ("coo", "csr", "csc"):
        scipy.sparse.save_npz(tmp_path / f"{fmt}.npz", getattr(scipy.sparse, f"{fmt}_matrix")(dense))
        with np.load(tmp_path / f"{fmt}.npz") as f:
            arrays = dict(f)
        assert is_sparse(arrays)
        value = from_arrays(arrays, f"{fmt}.npz", "here")
        np.testing.assert_array_equal(value.dense(), dense)
        key = value.row * 5 + value.col
        assert (np.diff(key) > 0).all()  # row-major sorted, unique
    # COO may repeat an entry: scipy sums repeats, and so does the reader.
    repeated = scipy.sparse.coo_matrix(([1.0, 2.0, 4.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    scipy.sparse.save_npz(tmp_path / "rep.npz", repeated)
    with np.load(tmp_path / "rep.npz") as f:
        np.testing.assert_array_equal(from_arrays(dict(f), "rep.npz", "here").dense(), repeated.toarray())
    assert not is_sparse({"jacobian.x": np.zeros(3)})
    bad = {"format": np.bytes_(b"coo"), "shape": np.array([2, 2]), "data": np.ones(1), "row": np.array([5]), "col": np.array([0])}
    with pytest.raises(SpecError, match="an entry lies outside its 2x2 shape"):
        from_arrays(bad, "bad.npz", "here")
    with pytest.raises(SpecError, match="1 values but 1 rows and 0 columns"):
        from_arrays({**bad, "row": np.array([0]), "col": np.zeros(0, int)}, "bad.npz", "here")


def test_golden_sparse_files_are_what_scipy_reads(tmp_path: Path) -> None:
    import scipy.sparse

    from jaxdiff_cli.checks.expectations import save_sparse
    from jaxdiff_cli.engine.sparse import Coloring, SparseMatrix

    coloring = Coloring("column", "fwd", 1, np.zeros(3, np.int32), "1 JVP instead of 3")
    sm = SparseMatrix(
        "jacobian", (2, 3), np.array([0, 1]), np.array([2, 0]), np.array([0.5, -1.0]), [("f", 2)], [("x", 3)], coloring
    )
    with open(tmp_path / "g.npz", "wb") as f:
        save_sparse(f, sm)
    np.testing.assert_array_equal(scipy.sparse.load_npz(tmp_path / "g.npz").toarray(), [[0, 0, 0.5], [-1.0, 0, 0]])

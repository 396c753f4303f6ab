"""Sparse Jacobians and Hessians (engine/sparse.py): equal to the dense ones, patterns conservative,
the cache, the choice of coloring, refusals that name the primitive.

References are independent of the sparse path: ``jax.jacfwd`` / ``jax.hessian`` called here on the
flattened function, closed forms, and NumPy float64 finite differences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxdiff_cli.engine import sparse
from jaxdiff_cli.engine.problem import Problem, execute

from ..oracles import fd_jacobian

pytest.importorskip("asdex")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}
IDX = np.array([3, 0, 7, 7, 2, 5])
MASK = np.random.default_rng(0).random(8) < 0.4  # a random mask, closed over as a constant
SPARSE_A = np.where(np.random.default_rng(1).random((6, 8)) < 0.25, np.random.default_rng(2).normal(size=(6, 8)), 0.0)

# Functions whose patterns are easy to get wrong: data-dependent branches, loops, indexing.
FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "banded": lambda x: 2 * x - jnp.pad(x, 1)[:-2] - jnp.pad(x, 1)[2:] + x**3,
    "where": lambda x: jnp.where(x > 0.1, x**2, jnp.sin(x[::-1])),
    "cond": lambda x: lax.cond(x[0] > 0, lambda y: y * y[1], lambda y: jnp.roll(y, 1), x),
    "while_loop": lambda x: lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] * jnp.roll(c[0], 1) + 0.1, c[1] + 1), (x, 0))[0],
    "fori_loop": lambda x: lax.fori_loop(0, 3, lambda i, y: y + jnp.sin(jnp.roll(y, 1)), x),
    "gather": lambda x: x[IDX] * x[IDX[::-1]],
    "scatter": lambda x: jnp.zeros(10, x.dtype).at[IDX].add(x[:6] ** 2),
    "scan": lambda x: lax.scan(lambda c, xi: (c * 0.5 + xi**2, c * xi), jnp.zeros((), x.dtype), x)[1],
    "mask": lambda x: x * MASK + jnp.cumsum(x) * (~MASK),
    "random_mask": lambda x: x * jax.random.bernoulli(jax.random.PRNGKey(3), 0.5, x.shape),
    "sparse_matrix": lambda x: jnp.tanh(jnp.asarray(SPARSE_A, x.dtype) @ x),
    "sort": lambda x: jnp.sort(x) * x,
    "dynamic_slice": lambda x: lax.dynamic_slice(x, (2,), (3,)) * x[:3],
    "constant": lambda x: jnp.ones(3, x.dtype),
}


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Iterator[str]:
    with jax.enable_x64(request.param == "float64"):
        yield request.param


def problem(fn: Any, *primals: Any, argnums: tuple[int, ...] = (0,), names: tuple[str, ...] | None = None) -> Problem:
    return Problem(fn=fn, names=names or tuple("xyzuvw"[: len(primals)]), primals=primals, argnums=argnums)


def flat_reference(fn: Callable[..., Any], primals: tuple[Any, ...], argnums: tuple[int, ...], hessian: bool = False) -> Any:
    """jacfwd (or hessian) of f as a function of one flat vector of the differentiated arguments."""
    diff = tuple(primals[i] for i in argnums)
    x, unravel = ravel_pytree(diff)

    def flat(v: Any) -> Any:
        args = list(primals)
        for i, d in zip(argnums, unravel(v)):
            args[i] = d
        out = fn(*args)
        return out if hessian else ravel_pytree(out)[0]

    return np.asarray(jax.jit(jax.hessian(flat) if hessian else jax.jacfwd(flat))(x))


def sparse_result(p: Problem, kind: str = "jacobian", mode: str = "auto", cache: Path | None = None) -> sparse.SparseMatrix:
    out = execute(sparse.plan_sparse(p, kind, mode, None, cache)).outputs[kind]
    assert isinstance(out, sparse.SparseMatrix)
    return out


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_sparse_jacobian_equals_dense_and_the_pattern_holds_every_nonzero(name: str, dtype: str) -> None:
    fn = FUNCTIONS[name]
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=8), dtype)
    sm = sparse_result(problem(fn, x))
    ref = flat_reference(fn, (x,), (0,))
    assert sm.data is not None and sm.data.dtype == np.dtype(dtype)
    np.testing.assert_allclose(sm.dense(), ref, **TOL[dtype])
    # conservative: the pattern is global, so it holds every nonzero at other points too
    pattern = np.zeros(sm.shape, bool)
    pattern[sm.row, sm.col] = True
    jac = jax.jit(jax.jacfwd(lambda v: jnp.ravel(fn(v))))
    for seed in range(3):
        y = jnp.asarray(np.random.default_rng(seed).normal(size=8) * 2, dtype)
        assert not np.any(np.asarray(jac(y))[~pattern]), f"{name}: a nonzero outside the pattern"


def test_the_pattern_is_found_once_and_serves_every_point(tmp_path: Path) -> None:
    fn = FUNCTIONS["where"]
    first = sparse_result(problem(fn, jnp.linspace(-1.0, 1.0, 8, dtype=jnp.float32)), cache=tmp_path)  # x64 may be on
    assert not first.coloring.cached
    for seed in range(3):  # other points, other branches of where: the cached pattern still holds
        y = jnp.asarray(np.random.default_rng(seed).normal(size=8), jnp.float32)
        again = sparse_result(problem(fn, y), cache=tmp_path)
        assert again.coloring.cached and again.nnz == first.nnz
        np.testing.assert_allclose(again.dense(), flat_reference(fn, (y,), (0,)), rtol=1e-6)


def test_banded_residual_against_its_closed_form_and_finite_differences() -> None:
    with jax.enable_x64(True):
        x = np.linspace(-1.0, 2.0, 50)
        sm = sparse_result(problem(FUNCTIONS["banded"], jnp.asarray(x)))
        closed = np.diag(2 + 3 * x**2) - np.eye(50, k=1) - np.eye(50, k=-1)
        np.testing.assert_allclose(sm.dense(), closed, rtol=1e-14)
        assert sm.nnz == 3 * 50 - 2 and sm.coloring.colors == 3 and sm.coloring.method == "column"
        fd = fd_jacobian(lambda v: 2 * v - np.pad(v, 1)[:-2] - np.pad(v, 1)[2:] + v**3, x)
        np.testing.assert_allclose(sm.dense(), fd, atol=1e-7)


def test_sparse_hessian_of_neighbour_interactions(dtype: str) -> None:
    def energy(x: Any) -> Any:
        return jnp.sum((x[1:] - x[:-1]) ** 4) + jnp.sum(jnp.cos(x))

    x = jnp.asarray(np.random.default_rng(3).normal(size=30), dtype)
    sm = sparse_result(problem(energy, x), "hessian")
    assert sm.coloring.method == "star" and sm.coloring.mode == "fwd-rev"
    assert sm.coloring.colors <= 4 and sm.nnz == 3 * 30 - 2
    np.testing.assert_allclose(sm.dense(), flat_reference(energy, (x,), (0,), hessian=True), **TOL[dtype])
    # closed form: 12 (x_i+1 - x_i)^2 couples neighbours; -cos on the diagonal
    xs = np.asarray(x, np.float64)
    d = 12 * np.diff(xs) ** 2
    closed = -np.diag(np.cos(xs)) - np.diag(d, 1) - np.diag(d, -1)
    closed += np.diag(np.concatenate([d, [0]]) + np.concatenate([[0], d]))
    np.testing.assert_allclose(sm.dense(), closed, rtol=1e-4 if dtype == "float32" else 1e-12, atol=1e-4)


def test_several_arguments_and_pytrees_are_flattened_with_their_block_names(dtype: str) -> None:
    def f(p: Any, w: Any, k: Any) -> Any:
        return {"a": p["a"] * w[:3] + k, "b": jnp.sum(p["b"], axis=0) * w[3:] ** 2}

    rng = np.random.default_rng(4)
    p = {"a": jnp.asarray(rng.normal(size=3), dtype), "b": jnp.asarray(rng.normal(size=(2, 2)), dtype)}
    w = jnp.asarray(rng.normal(size=5), dtype)
    k = jnp.asarray(rng.normal(size=3), dtype)
    prob = problem(f, p, w, k, argnums=(0, 1), names=("p", "w", "k"))
    sm = sparse_result(prob)
    np.testing.assert_allclose(sm.dense(), flat_reference(f, (p, w, k), (0, 1)), **TOL[dtype])
    assert sm.rows == [("f.a", 3), ("f.b", 2)]
    assert sm.cols == [("p.a", 3), ("p.b", 4), ("w", 5)]

    def g(p: Any, w: Any) -> Any:
        return jnp.sum(p["a"] ** 2 * w[:3]) + jnp.sum(p["b"] ** 3)

    hess = sparse_result(problem(g, p, w, argnums=(0, 1)), "hessian")
    ref = flat_reference(g, (p, w), (0, 1), hessian=True)
    np.testing.assert_allclose(hess.dense(), ref, **TOL[dtype])
    assert hess.rows == hess.cols == [("x.a", 3), ("x.b", 4), ("y", 5)]


def test_modes_color_columns_rows_or_the_fewer() -> None:
    def arrow(x: Any) -> Any:  # one dense row: columns all conflict, rows hardly
        return jnp.concatenate([jnp.sum(x)[None], 2 * x[1:]])

    p = problem(arrow, jnp.arange(1.0, 11.0))
    by_col = sparse_result(p, mode="fwd").coloring
    by_row = sparse_result(p, mode="rev").coloring
    auto = sparse_result(p, mode="auto").coloring
    assert (by_col.method, by_col.colors, by_col.passes) == ("column", 10, "10 JVPs, as many as dense")  # no saving
    assert (by_row.method, by_row.colors, by_row.passes) == ("row", 2, "2 VJPs instead of 10")
    assert auto.method == "row" and auto.mode == "rev"
    assert auto.reason == "pattern 19 nonzeros; 10 column colors (JVPs) vs 2 row colors (VJPs): 2 VJPs instead of 10"
    ref = flat_reference(arrow, (jnp.arange(1.0, 11.0),), (0,))
    for mode in ("fwd", "rev", "auto"):
        np.testing.assert_allclose(sparse_result(p, mode=mode).dense(), ref)


def test_coloring_counts_read_as_english() -> None:
    """One color is singular, and a coloring that saves nothing does not say "1 VJP instead of 1"."""
    p = problem(lambda x: x**2, jnp.array([3.0]))
    for mode, said in (("fwd", "1 JVP, as many as dense"), ("rev", "1 VJP, as many as dense")):
        assert sparse_result(p, mode=mode).coloring.passes == said
    auto = sparse_result(p, mode="auto").coloring
    assert auto.reason == "pattern 1 nonzero; 1 column color (JVP) vs 1 row color (VJP): 1 JVP, as many as dense"
    diag = sparse_result(problem(lambda x: x**2, jnp.arange(1.0, 6.0)), mode="rev").coloring
    assert diag.passes == "1 VJP instead of 5"


def test_a_long_detection_failure_is_cut_after_a_whole_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """asdex's (and JAX's) messages run long; the warning keeps whole sentences, never half of one."""
    said = (
        "grad requires real-valued outputs (output dtype that is a sub-dtype of np.floating), but got complex128. "
        "For holomorphic differentiation, pass holomorphic=True. For differentiation of non-holomorphic functions "
        "involving complex outputs, use jax.vjp directly."
    )
    assert sparse.whole_sentences(said) == said[: said.index("True.") + 5]
    assert sparse.whole_sentences("short. line\nsecond line") == "short. line"
    long_word = "a" * 190 + " words without a full stop " + "b" * 40
    assert sparse.whole_sentences(long_word) == "a" * 190 + " words …"  # cut after a word within 200 characters
    import asdex

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise TypeError(said)

    monkeypatch.setattr(asdex, "jacobian_sparsity", fails)
    with pytest.raises(sparse.Undetectable) as caught:
        sparse.detect(problem(jnp.sin, jnp.ones(3)), "jacobian")
    assert caught.value.reason == f"sparsity detection failed (TypeError: {said[: said.index('True.') + 5]})"


def test_blocks_are_named_as_the_dense_result_names_them() -> None:
    from jaxdiff_cli.engine.layout import named_leaves
    from jaxdiff_cli.engine.plans import hessian, jacobian

    def f(q: Any, w: Any) -> Any:
        return {"out": q["a"] * w[0], "sum": jnp.sum(q["b"]) * w}

    q = {"a": jnp.ones((2, 3)), "b": jnp.ones(4)}
    p = Problem(fn=f, names=("q", "w"), primals=(q, jnp.ones(2)), argnums=(0, 1), where="f")
    blocks = sparse.named_blocks(p, "jacobian")
    dense = dict(named_leaves({"jacobian": jacobian(p, "fwd").outputs["jacobian"]}))
    assert set(blocks) == set(dense)
    for name, block in blocks.items():
        assert block.shape == dense[name].shape, name
    assert blocks["jacobian.sum.q.b"].rows == (6, 8) and blocks["jacobian.sum.q.b"].cols == (6, 10)
    s = Problem(fn=lambda q, w: jnp.sum(q["a"] ** 2) * jnp.sum(q["b"]) + jnp.sum(w**3), names=("q", "w"),
                primals=(q, jnp.ones(2)), argnums=(0, 1), where="f")  # fmt: skip
    hess = dict(named_leaves({"hessian": hessian(s).outputs["hessian"]}))
    assert {n: b.shape for n, b in sparse.named_blocks(s, "hessian").items()} == {n: a.shape for n, a in hess.items()}


def test_the_cache_key_holds_what_the_pattern_depends_on(tmp_path: Path) -> None:
    x = jnp.linspace(0.0, 1.0, 8)

    def gather(x: Any, idx: Any) -> Any:
        return x[idx]

    key = sparse.cache_key(problem(gather, x, jnp.array([0, 1, 2])), "jacobian")
    assert key is not None
    assert sparse.cache_key(problem(gather, x * 2, jnp.array([0, 1, 2])), "jacobian") == key  # values of x: no
    assert sparse.cache_key(problem(gather, x, jnp.array([5, 1, 2])), "jacobian") != key  # the indices: yes
    assert sparse.cache_key(problem(gather, x[:7], jnp.array([0, 1, 2])), "jacobian") != key  # shapes: yes
    assert sparse.cache_key(problem(gather, x, jnp.array([0, 1, 2])), "hessian") != key
    # a gather of constant indices is exact: the other indices get another pattern, never the cached one
    a = sparse_result(problem(gather, x, jnp.array([0, 1, 2])), cache=tmp_path)
    b = sparse_result(problem(gather, x, jnp.array([5, 1, 2])), cache=tmp_path)
    assert not b.coloring.cached and list(a.col) == [0, 1, 2] and list(b.col) == [5, 1, 2]


def test_nothing_is_kept_without_a_cache_and_a_bad_cache_file_is_recomputed(tmp_path: Path) -> None:
    p = problem(FUNCTIONS["banded"], jnp.linspace(0.0, 1.0, 8))
    assert not sparse_result(p, cache=None).coloring.cached
    sparse_result(p, cache=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".sealed", ".sealed"]  # the coloring (and its facts), the pattern
    for f in files:
        f.write_bytes(b"not a cache file")
    again = sparse_result(p, cache=tmp_path)
    assert not again.coloring.cached
    np.testing.assert_allclose(again.dense(), flat_reference(FUNCTIONS["banded"], (jnp.linspace(0.0, 1.0, 8),), (0,)))


@pytest.mark.parametrize(
    ("fn", "primitive"),
    [(lambda x: jnp.abs(jnp.fft.fft(x)), "fft"), (lambda x: lax.cumlogsumexp(x), "cumlogsumexp")],
    ids=["fft", "cumlogsumexp"],
)
def test_a_primitive_without_a_rule_is_named_never_guessed(fn: Any, primitive: str) -> None:
    import gc

    with pytest.raises(sparse.Undetectable, match=f"no sparsity rule for the primitive '{primitive}'"):
        sparse.plan_sparse(problem(fn, jnp.linspace(0.1, 1.0, 8)), "jacobian")
    assert gc.isenabled()  # paused while detecting (it walks millions of sets for nothing), and back on


def test_sparse_summary_matches_the_dense_one() -> None:
    from jaxdiff_cli.engine.summary import EIG_DENSE_MAX, summary

    with jax.enable_x64(True):
        n = EIG_DENSE_MAX + 100  # Lanczos on the sparse matrix, not the dense eigensolver
        x = jnp.linspace(-1.0, 1.0, n)
        sm = sparse_result(problem(lambda x: jnp.sum((x[1:] - x[:-1]) ** 2) + jnp.sum(x**4), x), "hessian")
        ours, dense = sparse.summary(sm), summary(sm.matrix())
        assert ours["eigenvalues"]["method"] == "Lanczos on the sparse Hessian"
        for key in ("zeros", "frobenius_norm", "max_abs", "symmetry_defect"):
            assert ours[key] == pytest.approx(dense[key], abs=1e-12)
        for end in ("min", "max"):
            assert ours["eigenvalues"][end] == pytest.approx(dense["eigenvalues"][end], rel=1e-6, abs=1e-9)
        assert ours["definiteness"] == dense["definiteness"]
        assert ours["nnz"] == 3 * n - 2


def test_matvec_and_dense_refusal() -> None:
    sm = sparse_result(problem(FUNCTIONS["banded"], jnp.linspace(0.0, 1.0, 8)))
    v = np.arange(8.0)
    np.testing.assert_allclose(sm.matvec(v), sm.dense() @ v, rtol=1e-6)
    np.testing.assert_allclose(sm.rmatvec(v), sm.dense().T @ v, rtol=1e-6)
    from jaxdiff_cli.errors import UsageError

    with pytest.raises(UsageError, match="the dense jacobian would have 64 entries"):
        sm.dense(limit=10)

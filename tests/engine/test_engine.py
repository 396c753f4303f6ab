"""The engine called directly, checked against closed forms and float64 finite differences,
in float32 and float64."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_cli.engine.plans import evaluate, grad, hessian, hvp, jacobian, jvp, vjp
from jaxdiff_cli.engine.problem import Problem
from jaxdiff_cli.errors import FunctionError, SpecError, UsageError
from jaxdiff_cli.ops import HVP

from ..oracles import fd_hessian, fd_jacobian

TOL = {"float32": dict(rtol=2e-5, atol=1e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Iterator[str]:
    with jax.enable_x64(request.param == "float64"):
        yield request.param


def problem(fn: Any, *primals: Any, argnums: tuple[int, ...] = (0,), dtype: str = "float32") -> Problem:
    names = tuple("xyzuvw"[: len(primals)])
    arrays = tuple(jax.tree.map(lambda a: jnp.asarray(a, dtype=dtype), p) for p in primals)
    return Problem(fn=fn, names=names, primals=arrays, argnums=argnums)


def f_np(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.sin(x) * w**2 + np.exp(x[::-1] / 3)


def f_jax(x: Any, w: Any) -> Any:
    return jnp.sin(x) * w**2 + jnp.exp(x[::-1] / 3)


X = np.array([0.3, -1.2, 2.0, 0.7])
W = np.array([1.5, 0.2, -0.8, 1.1])


def test_jvp_and_vjp_match_finite_differences(dtype: str) -> None:
    jx = fd_jacobian(lambda x: f_np(x, W), X)
    jw = fd_jacobian(lambda w: f_np(X, w), W)
    p = problem(f_jax, X, W, argnums=(0, 1), dtype=dtype)
    v, t = np.array([1.0, -2.0, 0.5, 0.25]), np.array([0.1, 0.2, -0.3, 0.4])
    r = jvp(p, (jnp.asarray(v, dtype), jnp.asarray(t, dtype)))
    np.testing.assert_allclose(r.outputs["value"], f_np(X, W), **TOL[dtype])
    np.testing.assert_allclose(r.outputs["jvp"], jx @ v + jw @ t, **TOL[dtype] | {"rtol": max(TOL[dtype]["rtol"], 1e-8)})
    u = np.array([0.3, -1.0, 2.0, 1.0])
    r = vjp(p, jnp.asarray(u, dtype))
    np.testing.assert_allclose(r.outputs["vjp"]["x"], u @ jx, rtol=max(TOL[dtype]["rtol"], 1e-8), atol=TOL[dtype]["atol"])
    np.testing.assert_allclose(r.outputs["vjp"]["y"], u @ jw, rtol=max(TOL[dtype]["rtol"], 1e-8), atol=TOL[dtype]["atol"])
    assert r.outputs["vjp"]["x"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("mode", ["fwd", "rev", "auto"])
@pytest.mark.parametrize("chunk", [None, 1, 3, 100])
def test_jacobian_modes_and_chunks(dtype: str, mode: str, chunk: int | None) -> None:
    jx = fd_jacobian(lambda x: f_np(x, W), X)
    jw = fd_jacobian(lambda w: f_np(X, w), W)
    r = jacobian(problem(f_jax, X, W, argnums=(0, 1), dtype=dtype), mode, chunk)
    tol = dict(rtol=max(TOL[dtype]["rtol"], 1e-8), atol=max(TOL[dtype]["atol"], 1e-9))
    np.testing.assert_allclose(r.outputs["jacobian"]["x"], jx, **tol)
    np.testing.assert_allclose(r.outputs["jacobian"]["y"], jw, **tol)
    assert r.info["mode"] in ("fwd", "rev")


def test_chunked_jacobian_of_pytrees_matches_unchunked() -> None:
    def f(p: dict[str, Any], x: Any) -> Any:
        return {"a": jnp.tanh(p["W"] @ x + p["b"]), "b": jnp.sum(p["W"] ** 2)}

    params = {"W": np.arange(6.0).reshape(2, 3) / 5, "b": np.array([0.1, -0.2])}
    p = problem(f, params, np.array([1.0, 2.0, -1.0]))
    for mode in ("fwd", "rev"):
        full = jacobian(p, mode).outputs["jacobian"]
        chunked = jacobian(p, mode, 4).outputs["jacobian"]
        for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(chunked)):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert jax.tree.structure(full) == jax.tree.structure(chunked)


def test_auto_mode_says_why() -> None:
    wide = jacobian(problem(lambda x: jnp.sum(x**2), np.ones(5)), "auto")
    tall = jacobian(problem(lambda x: jnp.outer(x, x), np.ones(3)), "auto")
    assert wide.info["mode"] == "rev" and "5 inputs > 1 outputs" in wide.info["reason"]
    assert tall.info["mode"] == "fwd" and "3 inputs <= 9 outputs" in tall.info["reason"]


def g_np(x: np.ndarray) -> float:
    return float(np.sum(np.tanh(x) ** 2) + x[0] * x[1] ** 3)


def g_jax(x: Any) -> Any:
    return jnp.sum(jnp.tanh(x) ** 2) + x[0] * x[1] ** 3


Y = np.array([0.4, -0.9, 1.3])


def test_grad_hessian_hvp_match_finite_differences(dtype: str) -> None:
    hess = fd_hessian(g_np, Y)
    grad_fd = fd_jacobian(g_np, Y)
    p = problem(g_jax, Y, dtype=dtype)
    r = grad(p)
    np.testing.assert_allclose(r.outputs["grad"]["x"], grad_fd, rtol=max(TOL[dtype]["rtol"], 1e-8), atol=1e-8)
    np.testing.assert_allclose(r.outputs["value"], g_np(Y), **TOL[dtype])
    tol = dict(rtol=max(TOL[dtype]["rtol"], 1e-6), atol=1e-6)  # second differences are good to ~1e-7
    np.testing.assert_allclose(hessian(p).outputs["hessian"]["x"]["x"], hess, **tol)
    v = np.array([1.0, 0.5, -2.0])
    for mode in HVP.modes:
        out = hvp(p, (jnp.asarray(v, dtype),), mode).outputs["hvp"]["x"]
        np.testing.assert_allclose(out, hess @ v, **tol)
        assert out.dtype == np.dtype(dtype)


def test_batched_products_equal_single_products(dtype: str) -> None:
    p = problem(f_jax, X, W, argnums=(0,), dtype=dtype)
    rng = np.random.default_rng(0)
    vs = rng.standard_normal((5, 4)).astype(dtype)
    batched = jvp(p, (jnp.asarray(vs),), batch=5).outputs["jvp"]
    assert batched.shape == (5, 4)
    for i in range(5):
        single = jvp(p, (jnp.asarray(vs[i]),)).outputs["jvp"]
        np.testing.assert_allclose(batched[i], single, rtol=1e-6)
    us = rng.standard_normal((6, 4)).astype(dtype)
    pulled = vjp(p, jnp.asarray(us), batch=6).outputs["vjp"]["x"]
    jx = fd_jacobian(lambda x: f_np(x, W), X)
    np.testing.assert_allclose(pulled, us @ jx, rtol=max(TOL[dtype]["rtol"], 1e-7), atol=1e-6)
    ph = problem(g_jax, Y, dtype=dtype)
    hv = hvp(ph, (jnp.asarray(vs[:, :3]),), "fwd-rev", batch=5).outputs["hvp"]["x"]
    np.testing.assert_allclose(hv, vs[:, :3] @ fd_hessian(g_np, Y).T, rtol=1e-5, atol=1e-5)


def test_batched_jvp_is_one_vmapped_program() -> None:
    """A batch of tangents is one traced call of f (vmap), not one per tangent."""
    calls = []

    def f(x: Any) -> Any:
        calls.append(1)
        return jnp.sin(x)

    jvp(problem(f, np.ones(3)), (jnp.ones((50, 3), jnp.float32),), batch=50)
    assert len(calls) <= 2  # the value, and the vmapped JVP


def test_compiled_once_per_operation() -> None:
    traces = []

    def f(x: Any) -> Any:
        traces.append(1)
        return x**2

    evaluate(problem(f, np.ones(3)))
    assert len(traces) == 1


def test_scalar_required_with_a_hint() -> None:
    p = problem(lambda x: x**2, np.ones(3))
    for op in (grad, hessian):
        with pytest.raises(SpecError, match=r"scalar output.*shape \(3,\).*jnp.sum"):
            op(p)
    with pytest.raises(SpecError, match="scalar"):
        hvp(p, (jnp.ones(3),))


def test_function_errors_are_function_errors() -> None:
    def boom(x: Any) -> Any:
        raise ValueError("kaput")

    with pytest.raises(FunctionError, match="ValueError: kaput"):
        evaluate(problem(boom, np.ones(2)))
    with pytest.raises(FunctionError, match="not an array"):
        jacobian(problem(lambda x: "text", np.ones(2)), "fwd")
    with pytest.raises(FunctionError, match="failed to trace"):
        jvp(problem(lambda x: x @ jnp.ones(5), np.ones(2)), (jnp.ones(2),))


def test_bad_modes() -> None:
    p = problem(lambda x: jnp.sum(x), np.ones(2))
    with pytest.raises(UsageError):
        jacobian(p, "sideways")
    with pytest.raises(UsageError):
        hvp(p, (jnp.ones(2),), "fwd-fwd")


def test_first_nonfinite_names_output_and_index() -> None:
    from jaxdiff_cli.engine.diagnostics import first_nonfinite

    out = {"value": np.array([1.0, 2.0]), "grad": {"x": np.array([[0.0, 1.0], [np.nan, np.inf]])}}
    assert first_nonfinite(out) == ("grad.x", (1, 0), pytest.approx(float("nan"), nan_ok=True))
    assert first_nonfinite({"value": np.ones(2)}) is None


def test_precision_warnings() -> None:
    from jaxdiff_cli.engine.diagnostics import precision_warnings

    f32 = np.float32
    notes = precision_warnings(
        {"a": np.array([1e35, 1.0], f32), "b": np.array([1e-40, 1.0], f32), "c": {"d": np.array([1e-10, 1e5], f32)}}
    )
    assert len(notes) == 3 and notes[0].startswith("a reaches 1e+35") and "subnormal" in notes[1]
    assert notes[2].startswith("c.d spans 1e-10 to 1e+05")
    assert precision_warnings({"ok": np.array([1e-3, 1e6], f32), "f64": np.array([1e-300, 1e300])}) == []

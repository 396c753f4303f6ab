"""Complex values in the engine: JAX's conventions, checked against closed forms written out here.

- grad of a real f of z = x + iy is ∂f/∂x − i·∂f/∂y (= 2·∂f/∂z, the conjugate of 2·∂f/∂z̄);
- vjp is the transpose under Re Σ a·b: Re⟨u, J t⟩ = Re⟨vjp(u), t⟩;
- holomorphic: grad, jacobian (both modes), hessian and hvp (three modes) give f'(z), f''(z);
- what has no meaning is refused before tracing, with the remedy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_cli.engine.plans import grad, hessian, hvp, jacobian, jvp, vjp
from jaxdiff_cli.engine.problem import Problem
from jaxdiff_cli.errors import SpecError
from jaxdiff_cli.ops import HVP

Z = np.array([1.0 + 2.0j, -0.5j, 0.3 - 0.1j])


@pytest.fixture(params=["complex64", "complex128"])
def dtype(request: pytest.FixtureRequest) -> Iterator[str]:
    with jax.enable_x64(request.param == "complex128"):
        yield request.param


def tol(dtype: str) -> dict[str, float]:
    return dict(rtol=1e-5, atol=1e-5) if dtype == "complex64" else dict(rtol=1e-13, atol=1e-13)


def problem(fn: Any, *primals: Any, dtype: str, holomorphic: bool = False, argnums: tuple[int, ...] = (0,)) -> Problem:
    names = tuple("zwxyuv"[: len(primals)])
    arrays = tuple(jnp.asarray(p, dtype=dtype) for p in primals)
    return Problem(fn=fn, names=names, primals=arrays, argnums=argnums, holomorphic=holomorphic)


def test_grad_of_a_real_loss_is_df_dx_minus_i_df_dy(dtype: str) -> None:
    """f = Σ |z|² Re z = Σ (x² + y²) x: ∂f/∂x = 3x² + y², ∂f/∂y = 2xy."""
    p = problem(lambda z: jnp.sum(jnp.abs(z) ** 2 * jnp.real(z)), Z, dtype=dtype)
    g = np.asarray(grad(p).outputs["grad"]["z"])
    assert g.dtype == np.dtype(dtype)
    x, y = Z.real, Z.imag
    np.testing.assert_allclose(g, (3 * x**2 + y**2) - 1j * (2 * x * y), **tol(dtype))


def test_grad_of_abs_squared_is_twice_the_conjugate_direction(dtype: str) -> None:
    """The README's worked example: f(z) = |z|² at 1+2j gives 2 − 4j (2·z̄); the ascent direction is 2z."""
    p = problem(lambda z: jnp.abs(z) ** 2, 1 + 2j, dtype=dtype)
    assert complex(grad(p).outputs["grad"]["z"]) == pytest.approx(2 - 4j)


def test_holomorphic_grad_jacobian_hessian_hvp(dtype: str) -> None:
    """f(z) = Σ z³ + sin z: f' = 3z² + cos z, f'' = 6z − sin z (diagonal)."""
    fn = lambda z: jnp.sum(z**3 + jnp.sin(z))  # noqa: E731
    p = problem(fn, Z, dtype=dtype, holomorphic=True)
    first, second = 3 * Z**2 + np.cos(Z), 6 * Z - np.sin(Z)
    np.testing.assert_allclose(grad(p).outputs["grad"]["z"], first, **tol(dtype))
    np.testing.assert_allclose(hessian(p).outputs["hessian"]["z"]["z"], np.diag(second), **tol(dtype))
    v = jnp.asarray([1.0, 2.0 - 1.0j, 0.5j], dtype)
    for mode in HVP.modes:
        np.testing.assert_allclose(hvp(p, (v,), mode).outputs["hvp"]["z"], second * np.asarray(v), **tol(dtype), err_msg=mode)
    q = problem(lambda z: z**3 + jnp.sin(z), Z, dtype=dtype, holomorphic=True)
    for mode in ("fwd", "rev"):
        j = np.asarray(jacobian(q, mode).outputs["jacobian"]["z"])
        assert j.dtype == np.dtype(dtype)
        np.testing.assert_allclose(j, np.diag(first), **tol(dtype), err_msg=mode)


def test_jvp_of_any_function_and_vjp_under_the_bilinear_pairing(dtype: str) -> None:
    """f(z) = z̄ z² (not holomorphic): ∂f/∂z = 2 z̄ z, ∂f/∂z̄ = z², so J t = 2|z|² t + z² t̄."""
    fn = lambda z: jnp.conj(z) * z**2  # noqa: E731
    p = problem(fn, Z, dtype=dtype)
    t = np.array([0.5 - 1j, 2.0, 1j])
    jt = np.asarray(jvp(p, (jnp.asarray(t, dtype),)).outputs["jvp"])
    np.testing.assert_allclose(jt, 2 * abs(Z) ** 2 * t + Z**2 * np.conj(t), **tol(dtype))
    u = np.array([1.0 + 1j, -0.5j, 0.25])
    w = np.asarray(vjp(p, jnp.asarray(u, dtype)).outputs["vjp"]["z"])
    # Re Σ u·(J t) = Re Σ w·t for every t: w = 2|z|² u + conj(z² u)
    np.testing.assert_allclose(w, 2 * abs(Z) ** 2 * u + np.conj(Z**2 * u), **tol(dtype))


def test_jacobian_modes_that_complex_values_allow(dtype: str) -> None:
    # complex in, real out: reverse mode, rows = JAX's gradients; forward mode refused
    p = problem(lambda z: jnp.abs(z) ** 2, Z, dtype=dtype)
    result = jacobian(p, "auto")
    assert result.info["mode"] == "rev" and "reverse mode" in result.info["reason"]
    np.testing.assert_allclose(result.outputs["jacobian"]["z"], np.diag(2 * np.conj(Z)), **tol(dtype))
    with pytest.raises(SpecError, match="--mode fwd cannot"):
        jacobian(p, "fwd")
    # complex in and out, not holomorphic: no complex Jacobian
    with pytest.raises(SpecError, match="only if it is holomorphic"):
        jacobian(problem(lambda z: z * jnp.conj(z), Z, dtype=dtype), "auto")


def test_real_inputs_complex_outputs_forward_mode() -> None:
    with jax.enable_x64(True):
        x = np.array([0.1, 2.0])
        p = Problem(fn=lambda x: jnp.exp(1j * x) * x, names=("x",), primals=(jnp.asarray(x),), argnums=(0,))
        result = jacobian(p, "auto")
        assert result.info["mode"] == "fwd"
        np.testing.assert_allclose(result.outputs["jacobian"]["x"], np.diag(np.exp(1j * x) * (1 + 1j * x)), rtol=1e-13)
        with pytest.raises(SpecError, match="--mode rev cannot"):
            jacobian(p, "rev")


def test_refusals_name_the_remedy(dtype: str) -> None:
    with pytest.raises(SpecError, match=r"grad needs a float output.*--holomorphic"):
        grad(problem(lambda z: jnp.sum(z**2), Z, dtype=dtype))
    with pytest.raises(SpecError, match=r"hessian of a function of complex inputs.*--holomorphic"):
        hessian(problem(lambda z: jnp.sum(jnp.abs(z) ** 2), Z, dtype=dtype))
    with pytest.raises(SpecError, match="--holomorphic needs complex outputs"):
        grad(problem(lambda z: jnp.sum(jnp.abs(z)), Z, dtype=dtype, holomorphic=True))
    real = "float64" if dtype == "complex128" else "float32"
    with pytest.raises(SpecError, match="--holomorphic needs complex inputs, but z is real"):
        grad(problem(lambda x: jnp.sum(x * 1j), np.ones(3), dtype=real, holomorphic=True))

"""derivative and taylor in the engine, against closed forms (written out here, no JAX in the oracle).

Orders 1..8 of sin, exp, polynomials and rational functions in float64 (to float64 precision),
float32 and complex128; DifferentiationInterface's second-derivative scenarios (scalar -> scalar,
-> vector, -> matrix); directions, several arguments, pytrees, batches; Taylor mode and nested
forward mode agreeing, and the fallback from one to the other saying why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_cli.engine.problem import Problem, execute
from jaxdiff_cli.engine.taylor import METHOD_NAMES, NESTED_MAX_ORDER, plan_derivative, plan_taylor
from jaxdiff_cli.errors import FunctionError, SpecError

ORDERS = range(1, 9)


@pytest.fixture(autouse=True)
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


def problem(fn: Any, *primals: Any, argnums: tuple[int, ...] = (0,), dtype: str = "float64") -> Problem:
    names = tuple("xyzuvw"[: len(primals)])
    arrays = tuple(jax.tree.map(lambda a: jnp.asarray(a, dtype=dtype), p) for p in primals)
    return Problem(fn=fn, names=names, primals=arrays, argnums=argnums)


def derivative(
    p: Problem, order: int, tangents: tuple[Any, ...] | None = None, mode: str = "auto", batch: int | None = None
) -> Any:
    t = tangents if tangents is not None else (jnp.ones_like(p.primals[p.argnums[0]]),)
    return execute(plan_derivative(p, t, order, mode, batch))


def taylor(p: Problem, order: int, tangents: tuple[Any, ...] | None = None, mode: str = "auto", batch: int | None = None) -> Any:
    t = tangents if tangents is not None else (jnp.ones_like(p.primals[p.argnums[0]]),)
    return execute(plan_taylor(p, t, order, mode, batch))


# Closed forms: (jax function, k-th derivative at x as plain math).
X0 = 0.37
POLY = np.array([2.0, -1.0, 0.5, 3.0, -0.25, 1.5, 0.75, -2.0, 0.125, 1.0])  # c_0 .. c_9


def poly_k(x: float, k: int) -> float:
    """The k-th derivative of Σ c_j x^j: Σ_j c_j j!/(j−k)! x^(j−k)."""
    return sum(c * math.factorial(j) / math.factorial(j - k) * x ** (j - k) for j, c in enumerate(POLY) if j >= k)


CLOSED: dict[str, tuple[Callable[[Any], Any], Callable[[float, int], float]]] = {
    "sin": (jnp.sin, lambda x, k: math.sin(x + k * math.pi / 2)),
    "exp(3x)": (lambda x: jnp.exp(3 * x), lambda x, k: 3**k * math.exp(3 * x)),
    "polynomial": (lambda x: sum(c * x**j for j, c in enumerate(POLY)), poly_k),
    "1/(2-x)": (lambda x: 1 / (2 - x), lambda x, k: math.factorial(k) / (2 - x) ** (k + 1)),
    # (x+1)/(x+2) = 1 - 1/(x+2)
    "(x+1)/(x+2)": (lambda x: (x + 1) / (x + 2), lambda x, k: -((-1) ** k) * math.factorial(k) / (x + 2) ** (k + 1)),
    "log(1+x)": (jnp.log1p, lambda x, k: (-1) ** (k - 1) * math.factorial(k - 1) / (1 + x) ** k),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
@pytest.mark.parametrize("order", ORDERS)
def test_derivative_matches_closed_forms_to_float64_precision(name: str, order: int) -> None:
    fn, exact = CLOSED[name]
    want = exact(X0, order)
    for mode in ("jet", "jvp"):
        got = float(derivative(problem(fn, X0), order, mode=mode).outputs["derivative"])
        # float64 precision: a few ulps of the result, allowing for the terms it cancels.
        assert got == pytest.approx(want, rel=2e-13 * order, abs=1e-13 * order), (mode, got, want)


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_taylor_coefficients_match_closed_forms(name: str) -> None:
    fn, exact = CLOSED[name]
    order = 8
    result = taylor(problem(fn, X0), order)
    assert result.info["method"] == METHOD_NAMES["jet"]
    got = np.asarray(result.outputs["taylor"])
    assert got.shape == (order + 1,)
    want = [float(fn(X0)) if k == 0 else exact(X0, k) / math.factorial(k) for k in range(order + 1)]
    np.testing.assert_allclose(got, want, rtol=2e-13, atol=1e-14)


@pytest.mark.parametrize("order", [1, 2, 4, 8])
def test_float32_closed_forms(order: int) -> None:
    with jax.enable_x64(False):
        for name in ("sin", "exp(3x)", "1/(2-x)"):
            fn, exact = CLOSED[name]
            result = derivative(problem(fn, X0, dtype="float32"), order)
            assert result.outputs["derivative"].dtype == np.float32
            assert float(result.outputs["derivative"]) == pytest.approx(exact(X0, order), rel=2e-5 * order), name


@pytest.mark.parametrize("order", ORDERS)
def test_complex128_closed_forms(order: int) -> None:
    """exp(2z) and 1/(1 - z): holomorphic, so the derivative along v = 1 is f⁽ᵏ⁾(z)."""
    z = 0.3 + 0.4j
    p = problem(lambda z: jnp.exp(2 * z), z, dtype="complex128")
    got = complex(derivative(p, order).outputs["derivative"])
    assert got == pytest.approx(2**order * np.exp(2 * z), rel=1e-13)
    p = problem(lambda z: 1 / (1 - z), z, dtype="complex128")
    got = complex(derivative(p, order).outputs["derivative"])
    assert got == pytest.approx(math.factorial(order) / (1 - z) ** (order + 1), rel=1e-12)


def test_complex_direction_of_a_non_holomorphic_function() -> None:
    """|z|² along z + s·v (s real) is |z|² + 2 s Re(z̄ v) + s² |v|²: second derivative 2|v|²."""
    z, v = 0.3 + 0.4j, 1.0 - 2.0j
    p = problem(lambda z: jnp.abs(z) ** 2, z, dtype="complex128")
    for mode in ("auto", "jvp"):
        result = derivative(p, 2, (jnp.asarray(v),), mode=mode)
        assert float(np.real(result.outputs["derivative"])) == pytest.approx(2 * abs(v) ** 2, rel=1e-13)


# DifferentiationInterface's second_derivative scenarios: f of one scalar, any output shape.
DI_SCENARIOS = {
    "scalar -> scalar": (lambda x: jnp.sin(x) * x, lambda x: 2 * np.cos(x) - x * np.sin(x)),
    "scalar -> vector": (
        lambda x: jnp.stack([jnp.sin(x), jnp.cos(x), x**3]),
        lambda x: np.array([-np.sin(x), -np.cos(x), 6 * x]),
    ),
    "scalar -> matrix": (
        lambda x: jnp.array([[jnp.exp(x), x**2], [jnp.sin(2 * x), 1 / x]]),
        lambda x: np.array([[np.exp(x), 2.0], [-4 * np.sin(2 * x), 2 / x**3]]),
    ),
}


@pytest.mark.parametrize("scenario", sorted(DI_SCENARIOS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_second_derivative_scenarios(scenario: str, dtype: str) -> None:
    fn, second = DI_SCENARIOS[scenario]
    with jax.enable_x64(dtype == "float64"):
        result = derivative(problem(fn, X0, dtype=dtype), 2)
        got = np.asarray(result.outputs["derivative"])
        assert got.dtype == np.dtype(dtype)
        assert got.shape == np.shape(second(X0))
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(got, second(X0), **tol)
        np.testing.assert_allclose(result.outputs["value"], np.asarray(fn(X0)), **tol)


def test_direction_scales_as_a_power_of_the_order() -> None:
    """Along v the K-th derivative is f⁽ᴷ⁾(x)·vᴷ for a function of one variable."""
    p = problem(jnp.exp, 0.5)
    for order in (1, 3, 6):
        got = float(derivative(p, order, (jnp.asarray(-1.5),)).outputs["derivative"])
        assert got == pytest.approx(np.exp(0.5) * (-1.5) ** order, rel=1e-13)


def test_several_arguments_move_together_and_order_of_arguments_does_not_matter() -> None:
    """f(x, y) = x² y along (a, b): d²/ds² (x+sa)²(y+sb) = 2a²y + 4ab x, and d³ = 6a²b."""
    x, y, a, b = 0.7, -1.3, 0.5, 2.0
    forward = problem(lambda x, y: x**2 * y, x, y, argnums=(0, 1))
    swapped = Problem(fn=lambda y, x: x**2 * y, names=("y", "x"), primals=(jnp.asarray(y), jnp.asarray(x)), argnums=(0, 1))
    for p, t in ((forward, (jnp.asarray(a), jnp.asarray(b))), (swapped, (jnp.asarray(b), jnp.asarray(a)))):
        assert float(derivative(p, 2, t).outputs["derivative"]) == pytest.approx(2 * a**2 * y + 4 * a * b * x, rel=1e-13)
        assert float(derivative(p, 3, t).outputs["derivative"]) == pytest.approx(6 * a**2 * b, rel=1e-13)
        assert float(derivative(p, 4, t).outputs["derivative"]) == pytest.approx(0.0, abs=1e-13)


def test_pytree_argument_and_pytree_output() -> None:
    """params {a, b}; f = (a·b, sin a) along (va, vb): second derivatives 2 va vb and −sin(a) va²."""
    params = {"a": jnp.asarray(0.4), "b": jnp.asarray(1.5)}
    v = {"a": jnp.asarray(2.0), "b": jnp.asarray(-1.0)}
    p = Problem(fn=lambda q: {"prod": q["a"] * q["b"], "sin": jnp.sin(q["a"])}, names=("q",), primals=(params,), argnums=(0,))
    for mode in ("jet", "jvp"):
        out = derivative(p, 2, (v,), mode=mode).outputs["derivative"]
        assert float(out["prod"]) == pytest.approx(2 * 2.0 * -1.0, rel=1e-13)
        assert float(out["sin"]) == pytest.approx(-np.sin(0.4) * 4.0, rel=1e-13)
        coefficients = taylor(p, 3, (v,), mode=mode).outputs["taylor"]
        np.testing.assert_allclose(
            coefficients["sin"], [np.sin(0.4), np.cos(0.4) * 2, -np.sin(0.4) * 4 / 2, -np.cos(0.4) * 8 / 6]
        )


def test_batched_directions_are_one_vmapped_program() -> None:
    calls = []

    def f(x: Any) -> Any:
        calls.append(1)
        return jnp.sin(x) * x[0]

    p = problem(f, np.array([0.2, 0.5]))
    vs = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    result = derivative(p, 3, (vs,), batch=3)
    got = np.asarray(result.outputs["derivative"])
    assert got.shape == (3, 2)
    singles = [np.asarray(derivative(p, 3, (v,)).outputs["derivative"]) for v in vs]
    np.testing.assert_allclose(got, np.stack(singles), rtol=1e-13)
    assert result.info["batch"] == 3
    coefficients = np.asarray(taylor(p, 3, (vs,), batch=3).outputs["taylor"])
    assert coefficients.shape == (3, 4, 2)
    np.testing.assert_allclose(coefficients[:, 3, :] * 6, got, rtol=1e-13)


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (jnp.tan, "no Taylor rule for the primitive 'tan'"),
        (lambda x: jax.nn.softplus(x) * x, "custom_jvp"),
        (lambda x: jnp.sort(jnp.stack([x, 1 - x]))[0] * x, "'sort'"),
    ],
)
def test_auto_falls_back_to_nested_forward_mode_and_says_why(fn: Any, reason: str) -> None:
    p = problem(fn, 0.3)
    result = derivative(p, 5)  # from order 5 auto tries jet first
    assert result.info["method"] == METHOD_NAMES["jvp"]
    assert reason in result.info["fallback"]
    forced = derivative(p, 5, mode="jvp")
    assert float(result.outputs["derivative"]) == float(forced.outputs["derivative"])
    with pytest.raises(FunctionError, match="Taylor mode cannot differentiate"):
        derivative(p, 5, mode="jet")


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 8])
def test_auto_is_nested_forward_mode_up_to_order_4_and_jet_above(order: int) -> None:
    """Up to order 4 nested jvp compiles faster and rounds less (BENCHMARKS.md); above, jet."""
    result = derivative(problem(lambda x: jnp.sin(x) * x, 0.3), order)
    assert result.info["method"] == METHOD_NAMES["jvp" if order <= 4 else "jet"] and "fallback" not in result.info


def test_auto_is_exact_on_a_cubic_in_float32() -> None:
    """x³ at 2, order 2: 12 exactly (jet gave 11.999994 in float32)."""
    assert float(derivative(problem(lambda x: x**3, 2.0, dtype="float32"), 2).outputs["derivative"]) == 12.0


def test_tan_closed_form_through_the_fallback() -> None:
    """tan''' = 2 sec²x (sec²x + 2 tan²x)."""
    x = 0.5
    sec2, tan2 = 1 / np.cos(x) ** 2, np.tan(x) ** 2
    got = float(derivative(problem(jnp.tan, x), 3).outputs["derivative"])
    assert got == pytest.approx(2 * sec2 * (sec2 + 2 * tan2), rel=1e-13)


def test_orders_beyond_nested_forward_mode_are_refused_where_jet_cannot() -> None:
    with pytest.raises(SpecError, match=f"stops at order {NESTED_MAX_ORDER}"):
        derivative(problem(jnp.tan, 0.3), NESTED_MAX_ORDER + 1)
    # where jet can, high orders are fine: exp(x)'s 20th derivative is exp(x)
    assert float(derivative(problem(jnp.exp, 0.3), 20).outputs["derivative"]) == pytest.approx(np.exp(0.3), rel=1e-12)


def test_the_function_own_error_is_the_function_s() -> None:
    def broken(x: Any) -> Any:
        return jnp.dot(jnp.ones(3), jnp.ones(4)) * x

    with pytest.raises(FunctionError, match="failed to trace"):
        derivative(problem(broken, 0.3), 2)


def test_integer_outputs_are_refused() -> None:
    with pytest.raises(SpecError, match="float or complex outputs"):
        derivative(problem(lambda x: jnp.floor(x).astype(jnp.int32), 0.3), 1)

"""Higher derivatives along a line: the K-th derivative, and every Taylor coefficient up to K, of
s ↦ f(x + s·v) at s = 0 (s real; x and v are the differentiated arguments and their tangents).

Two ways, each one jit program:

- Taylor mode (``jax.experimental.jet``): the input path x + s·v as a truncated series (v, 0, ..., 0)
  is pushed through f once, primitive by primitive, giving all K derivatives at a cost that grows
  like K² (products of series), not like 2^K. jet has rules for the common elementwise primitives
  but not all (``tan``, ``sort``, loops, linear solves, and it does not go through custom_jvp /
  custom_vjp functions such as ``jax.nn.relu``);
- nested forward mode: K nested ``jax.jvp`` calls, which take any function JAX differentiates but
  whose traced program doubles with each order (XLA then merges the repeated work, but compiling
  grows with it: NESTED_MAX_ORDER bounds it).

``auto`` traces the jet program abstractly first (no compile) and, where jet fails, uses nested
forward mode, saying why in ``info``. jet's terms are derivatives (f⁽ᵏ⁾(x)[v, ..., v]); Taylor
coefficients divide them by k!.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import jet as jet_module

from jaxdiff_cli.engine import complex_rules
from jaxdiff_cli.engine.problem import Plan, Problem, output_shape
from jaxdiff_cli.errors import FunctionError, SpecError, UsageError, function_failed
from jaxdiff_cli.ops import DERIVATIVE, TAYLOR

# jet carries no annotations; typed here once.
jet: Callable[..., tuple[Any, Any]] = jet_module.jet
METHODS = DERIVATIVE.modes  # and taylor's: auto, jet (Taylor mode), jvp (nested forward mode)
NESTED_MAX_ORDER = 10  # nested jvp of a 64-wide MLP: 0.3 s to compile at order 2, 8 s at 8, 55 s at 10
# auto takes nested forward mode up to this order: there it compiled 1.6-2.8x faster than jet and ran
# as fast or faster (BENCHMARKS.md), and it rounds less (x³ at 2, order 2: 12 exactly; jet 11.999994
# in float32). From order 5 the nested program's 2^K growth makes jet the cheaper one to compile.
AUTO_NESTED_UP_TO = 4
METHOD_NAMES = {"jet": "taylor mode (jax.experimental.jet)", "jvp": "nested forward mode (jvp of jvp ...)"}

Line = Callable[..., Any]  # f of the differentiated leaves


def line_function(problem: Problem, primals: Sequence[Any]) -> tuple[Line, list[Any], Any]:
    """f as a function of the differentiated arguments' leaves (jet takes arrays, not pytrees), those
    leaves, and their tree."""
    h = problem.of_diff(primals)
    leaves, tree = jax.tree.flatten(tuple(problem.diff(primals)))

    def g(*xs: Any) -> Any:
        return h(*jax.tree.unflatten(tree, list(xs)))

    return g, leaves, tree


def _typed(trees: list[Any], like: Any) -> list[Any]:
    """Each tree's leaves in the dtype of the output's (jet's terms can come back weakly typed)."""
    return [jax.tree.map(lambda t, o: jnp.asarray(t, o.dtype), tree, like) for tree in trees]


def jet_derivatives(g: Line, xs: Sequence[Any], vs: Sequence[Any], order: int) -> tuple[Any, list[Any]]:
    """(f(x), [f'(x)[v], ..., f⁽ᴷ⁾(x)[v, ..., v]]) in one pass of Taylor mode."""
    series = [[v] + [jnp.zeros_like(v)] * (order - 1) for v in vs]
    out, terms = jet(g, tuple(xs), tuple(series))
    out_tree: Any = jax.tree.structure(out)
    per_leaf = out_tree.flatten_up_to(terms)  # each output leaf: its K terms
    derivs = [out_tree.unflatten([leaf_terms[k] for leaf_terms in per_leaf]) for k in range(order)]
    return out, _typed(derivs, out)


def nested_derivative(g: Line, xs: Sequence[Any], vs: Sequence[Any], order: int) -> Any:
    """f⁽ᴷ⁾(x)[v, ..., v] by K nested jvps (order 0: f(x))."""
    if order == 0:
        return g(*xs)
    return jax.jvp(lambda *ys: nested_derivative(g, ys, vs, order - 1), tuple(xs), tuple(vs))[1]


def nested_derivatives(g: Line, xs: Sequence[Any], vs: Sequence[Any], order: int) -> list[Any]:
    """[f(x), f'(x)[v], ..., f⁽ᴷ⁾(x)[v, ..., v]] by nested jvps: the jvp of the list up to order K−1
    holds, last, the derivative of order K."""
    if order == 0:
        return [g(*xs)]
    below, tangent = jax.jvp(lambda *ys: tuple(nested_derivatives(g, ys, vs, order - 1)), tuple(xs), tuple(vs))
    return [*below, tangent[-1]]


def jet_failure(exc: BaseException) -> str:
    """Why jet could not go through the function, in a few words."""
    if isinstance(exc, KeyError) and exc.args:
        return f"jet has no Taylor rule for the primitive '{exc.args[0]}'"
    if isinstance(exc, jax.errors.UnexpectedTracerError):
        return "jet does not go through custom_jvp / custom_vjp functions (jax.nn.relu, softplus, logaddexp, ...)"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"jet failed: {type(exc).__name__}" + (f": {first[:160]}" if first else "")


def _check_problem(problem: Problem, op: str, order: int) -> None:
    complex_rules.validate(problem, op)
    if order < 1:
        raise UsageError(f"order {order}: an order is a whole number from 1")
    for leaf in jax.tree.leaves(output_shape(problem)):
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise SpecError(f"{op} needs float or complex outputs, but the function returns {leaf.dtype}", where=problem.where)


def order_bound(problem: Problem, order: int) -> int | None:
    """The bound on a K-th order program: K² times the function's (Problem.max_program). Its growth
    with K is the order limits' business (order <= 32, NESTED_MAX_ORDER); the function's own program
    is bounded by output_shape. Jet of order 32 of a one-line expression measures ~54,000, nested
    forward mode of order 8 ~214,000: both legitimate, both compile in seconds."""
    return None if problem.max_program is None else problem.max_program * order**2


def choose_method(
    problem: Problem, tangents: tuple[Any, ...], order: int, mode: str, batch: int | None
) -> tuple[str, dict[str, Any]]:
    """jet or jvp, and the info that says which (and, on a fallback, why)."""
    if mode not in METHODS:
        raise UsageError(f"unknown mode {mode!r}", hint=", ".join(METHODS))
    nested_info: dict[str, Any] = {"method": METHOD_NAMES["jvp"]}
    if mode == "jvp":
        _nested_order_ok(problem, order, None)
        return "jvp", nested_info
    if mode == "auto" and order <= AUTO_NESTED_UP_TO:
        return "jvp", nested_info

    def probe(primals: Any, vectors: Any) -> Any:
        g, xs, _ = line_function(problem, primals)

        def one(vs: list[Any]) -> Any:
            return jet_derivatives(g, xs, vs, order)[1]

        return _mapped(batch, one)(jax.tree.leaves(vectors))

    try:
        jax.eval_shape(probe, problem.primals, tangents)  # an abstract trace: no compile, no FLOPs
    except (SpecError, UsageError, FunctionError):
        raise
    except Exception as exc:
        reason = jet_failure(exc)
        _function_traces(problem)  # the function's own error is the function's, not jet's
        if mode == "jet":
            raise FunctionError(
                f"Taylor mode cannot differentiate this function: {reason}", where=problem.where, hint="--mode jvp or auto"
            ) from None
        _nested_order_ok(problem, order, reason)
        return "jvp", {**nested_info, "fallback": reason}
    return "jet", {"method": METHOD_NAMES["jet"]}


def _function_traces(problem: Problem) -> None:
    """Raise the function's own error (exit 4) if the function itself does not trace."""
    try:
        jax.eval_shape(lambda p: problem.main(*p), problem.primals)
    except FunctionError:
        raise
    except Exception as exc:
        raise function_failed("trace", exc, problem.where) from exc


def _nested_order_ok(problem: Problem, order: int, reason: str | None) -> None:
    if order > NESTED_MAX_ORDER:
        why = f"{reason}, and nested" if reason else "Nested"
        raise SpecError(
            f"{why} forward mode stops at order {NESTED_MAX_ORDER}: its program doubles with each order (asked: {order})",
            where=problem.where,
            hint="a lower order, or a function jet can differentiate (--mode auto uses jet wherever it can)",
        )


def _mapped(batch: int | None, one: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return jax.vmap(one) if batch is not None else one


def plan_derivative(
    problem: Problem, tangents: tuple[Any, ...], order: int, mode: str = "auto", batch: int | None = None
) -> Plan:
    """f(x) and f⁽ᴷ⁾(x)[v, ..., v], the K-th derivative of s ↦ f(x + s·v), shaped like the output."""
    _check_problem(problem, DERIVATIVE.name, order)
    method, info = choose_method(problem, tangents, order, mode, batch)

    def g(primals: tuple[Any, ...], vectors: tuple[Any, ...]) -> Any:
        line, xs, _ = line_function(problem, primals)

        def one(vs: list[Any]) -> Any:
            if method == "jet":
                return jet_derivatives(line, xs, vs, order)[1][-1]
            return _typed([nested_derivative(line, xs, vs, order)], output_shape(problem))[0]

        return problem.call(*primals), _mapped(batch, one)(jax.tree.leaves(vectors))

    def finish(o: Any) -> dict[str, Any]:
        (value, aux), deriv = o
        return {"value": value, DERIVATIVE.result: deriv, **({"aux": aux} if aux is not None else {})}

    info = {"order": order, **info, "batch": batch}
    return Plan(
        DERIVATIVE.name, g, (problem.primals, tangents), finish, problem.where, info, max_program=order_bound(problem, order)
    )


def factorials(order: int) -> np.ndarray:
    return np.array([math.factorial(k) for k in range(order + 1)], dtype=np.float64)


def plan_taylor(problem: Problem, tangents: tuple[Any, ...], order: int, mode: str = "auto", batch: int | None = None) -> Plan:
    """f(x) and the Taylor coefficients f⁽ᵏ⁾(x)[v, ..., v] / k! for k = 0..K, each output leaf stacked
    along a new leading axis of K + 1 (after the batch axis, if any)."""
    _check_problem(problem, TAYLOR.name, order)
    method, info = choose_method(problem, tangents, order, mode, batch)
    scale = factorials(order)

    def g(primals: tuple[Any, ...], vectors: tuple[Any, ...]) -> Any:
        line, xs, _ = line_function(problem, primals)

        def one(vs: list[Any]) -> Any:
            if method == "jet":
                value, derivs = jet_derivatives(line, xs, vs, order)
                terms = [value, *derivs]
            else:
                terms = _typed(nested_derivatives(line, xs, vs, order), output_shape(problem))
            # Divide in the output's dtype: k! up to 32! (2.6e35) is a float32 number.
            return jax.tree.map(
                lambda *per_k: jnp.stack([t / jnp.asarray(scale[k], t.dtype) for k, t in enumerate(per_k)]), *terms
            )

        return problem.call(*primals), _mapped(batch, one)(jax.tree.leaves(vectors))

    def finish(o: Any) -> dict[str, Any]:
        (value, aux), coefficients = o
        return {"value": value, TAYLOR.result: coefficients, **({"aux": aux} if aux is not None else {})}

    info = {"order": order, **info, "batch": batch}
    return Plan(TAYLOR.name, g, (problem.primals, tangents), finish, problem.where, info, max_program=order_bound(problem, order))


PLANNERS = {DERIVATIVE.name: plan_derivative, TAYLOR.name: plan_taylor}  # prepare's lookup, by operation

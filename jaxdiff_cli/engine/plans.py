"""The operations as Plans: eval, jvp, vjp, grad, jacobian, hessian, hvp, each written once.

Results are grouped per differentiated argument, ``{"x": ..., "w": ...}``, with JAX's nesting
inside (see layout.py). Batched tangents and cotangents go through ``jax.vmap``: one program,
never a Python loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_cli.engine import complex_rules
from jaxdiff_cli.engine.chunking import chunked_flat_jacobian
from jaxdiff_cli.engine.layout import nest_hessian, nest_jacobian, unflatten_jacobian
from jaxdiff_cli.engine.problem import Plan, Problem, Result, by_arg, execute, output_shape, require_scalar
from jaxdiff_cli.errors import FunctionError, SpecError, UsageError
from jaxdiff_cli.ops import EVAL, GRAD, HESSIAN, HVP, JACOBIAN, JVP, VJP


def choose_mode(problem: Problem) -> tuple[str, str]:
    """auto: forward mode when inputs <= outputs (one JVP per input), else reverse (one VJP per output)."""
    n_in, n_out = problem.sizes()
    if n_in <= n_out:
        return "fwd", f"{n_in} inputs <= {n_out} outputs: forward mode pushes one tangent per input"
    return "rev", f"{n_in} inputs > {n_out} outputs: reverse mode pulls one cotangent per output"


def jacobian_mode(problem: Problem, mode: str) -> tuple[str, dict[str, Any]]:
    """A Jacobian mode checked, with auto resolved: (fwd or rev, the info that says so and why)."""
    if mode not in JACOBIAN.modes:
        raise UsageError(f"unknown jacobian mode {mode!r}", hint=", ".join(JACOBIAN.modes))
    forced = complex_rules.forced_jacobian_mode(problem)
    if forced is not None:  # complex values allow one mode only
        if mode not in ("auto", forced[0]):
            raise SpecError(f"--mode {mode} cannot differentiate this function: {forced[1]}", where=problem.where)
        return forced[0], {"mode": forced[0]} if mode != "auto" else {"mode": forced[0], "auto": True, "reason": forced[1]}
    if mode != "auto":
        return mode, {"mode": mode}
    chosen, reason = choose_mode(problem)
    return chosen, {"mode": chosen, "auto": True, "reason": reason}


def tree_vdot(a: Any, b: Any) -> Any:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_dot(a: Any, b: Any) -> Any:
    """Σ a·b over all leaves, without conjugating: the pairing of a holomorphic derivative with a vector."""
    return sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def hvp_product(f: Callable[[Any], Any], x: Any, v: Any, mode: str = "fwd-rev", holomorphic: bool = False) -> Any:
    """H v for a scalar f of one pytree x, by one of three compositions of the two modes.

    ``holomorphic``: f is complex and holomorphic, H its complex second derivative (JAX's
    holomorphic=True for each gradient, and a pairing without conjugate).
    """
    grad = functools.partial(jax.grad, holomorphic=True) if holomorphic else jax.grad
    if mode == "fwd-rev":  # forward over reverse: usually the cheapest
        return jax.jvp(grad(f), (x,), (v,))[1]
    if mode == "rev-fwd":
        return grad(lambda y: jax.jvp(f, (y,), (v,))[1])(x)
    if mode == "rev-rev":
        return grad(lambda y: (tree_dot if holomorphic else tree_vdot)(grad(f)(y), v))(x)
    raise UsageError(f"unknown hvp mode {mode!r}", hint=", ".join(HVP.modes))


def _batched(batch: int | None, one: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Map ``one`` over a leading batch axis with vmap (one fused program, never a Python loop)."""
    return jax.vmap(one) if batch is not None else one


def _outputs(value_aux: tuple[Any, Any], **named: Any) -> dict[str, Any]:
    """The named outputs, with the value and (when the function has it) the auxiliary data."""
    value, aux = value_aux
    return {"value": value, **named, **({"aux": aux} if aux is not None else {})}


def plan_eval(problem: Problem) -> Plan:
    def finish(out: Any) -> dict[str, Any]:
        if not jax.tree.leaves(out[0]):
            raise FunctionError("the function returned no arrays", where=problem.where)
        return _outputs(out)

    return Plan(EVAL.name, lambda p: problem.call(*p), (problem.primals,), finish, problem.where, max_program=problem.max_program)


def plan_jvp(problem: Problem, tangents: tuple[Any, ...], batch: int | None = None) -> Plan:
    """f(x) and ∂f(x)·v; with a batch of tangents, J·V via vmap."""
    complex_rules.validate(problem, JVP.name)

    def g(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        diff = problem.diff(primals)
        tangent_out = _batched(batch, lambda t: jax.jvp(h, diff, t)[1])(tangents)
        return problem.call(*primals), tangent_out

    return Plan(
        JVP.name,
        g,
        (problem.primals, tangents),
        lambda o: _outputs(o[0], jvp=o[1]),
        problem.where,
        {"batch": batch},
        max_program=problem.max_program,
    )


def plan_vjp(problem: Problem, cotangent: Any, batch: int | None = None) -> Plan:
    """f(x) and uᵀ·∂f(x), one result per differentiated argument; batched via vmap."""
    complex_rules.validate(problem, VJP.name)

    def g(primals: tuple[Any, ...], cotangent: Any) -> Any:
        value, pull, (_, aux) = jax.vjp(problem.of_diff(primals, with_aux=True), *problem.diff(primals), has_aux=True)
        return (value, aux), _batched(batch, pull)(cotangent)

    def finish(o: Any) -> dict[str, Any]:
        return _outputs(o[0], vjp=by_arg(problem, o[1]))

    return Plan(
        VJP.name, g, (problem.primals, cotangent), finish, problem.where, {"batch": batch}, max_program=problem.max_program
    )


def plan_grad(problem: Problem) -> Plan:
    """∇f(x) for scalar f, per differentiated argument, with f(x)."""
    complex_rules.validate(problem, GRAD.name)
    require_scalar(problem, GRAD.name)

    def g(primals: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals, with_aux=True)
        argnums = tuple(range(len(problem.argnums)))
        grad = jax.value_and_grad(h, argnums=argnums, has_aux=True, holomorphic=problem.holomorphic)
        (_, value_aux), grads = grad(*problem.diff(primals))
        return value_aux, grads

    return Plan(
        GRAD.name,
        g,
        (problem.primals,),
        lambda o: _outputs(o[0], grad=by_arg(problem, o[1])),
        problem.where,
        max_program=problem.max_program,
    )


def plan_jacobian(problem: Problem, mode: str = "auto", chunk_size: int | None = None) -> Plan:
    """∂f(x), nested as layout.nest_jacobian names it, each block with output axes first."""
    complex_rules.validate(problem, JACOBIAN.name)
    mode, info = jacobian_mode(problem, mode)
    out_struct = output_shape(problem)  # also: a clean error for a bad function before jacfwd's own
    argnums = tuple(range(len(problem.argnums)))
    out_tree: Any = jax.tree.structure(out_struct)
    if chunk_size is not None:
        info["chunk_size"] = chunk_size

    def g(primals: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        diff = problem.diff(primals)
        if chunk_size is not None:
            return unflatten_jacobian(chunked_flat_jacobian(h, diff, mode, chunk_size), out_struct, diff)
        jac = (jax.jacfwd if mode == "fwd" else jax.jacrev)(h, argnums=argnums, holomorphic=problem.holomorphic)(*diff)
        # jax nests a tuple over arguments inside each output leaf; lift that tuple outward,
        # keeping each argument's block as jax lays it out (output tree, then input tree).
        per_leaf = out_tree.flatten_up_to(jac)
        return tuple(out_tree.unflatten([blocks[k] for blocks in per_leaf]) for k in argnums)

    def finish(per_arg: Any) -> dict[str, Any]:
        return {JACOBIAN.result: nest_jacobian(problem, out_struct, per_arg)}

    return Plan(JACOBIAN.name, g, (problem.primals,), finish, problem.where, info, max_program=problem.max_program)


def plan_hessian(problem: Problem) -> Plan:
    """∂²f(x) for scalar f (forward-over-reverse), as layout.nest_hessian names it."""
    complex_rules.validate(problem, HESSIAN.name)
    require_scalar(problem, HESSIAN.name)
    argnums = tuple(range(len(problem.argnums)))
    diff_struct = problem.diff(problem.primals)

    def g(primals: tuple[Any, ...]) -> Any:
        return jax.hessian(problem.of_diff(primals), argnums=argnums, holomorphic=problem.holomorphic)(*problem.diff(primals))

    def finish(hess: Any) -> dict[str, Any]:
        def block(i: int, j: int) -> Any:
            tree: Any = jax.tree.structure(diff_struct[i])
            return tree.unflatten([per_j[j] for per_j in tree.flatten_up_to(hess[i])])

        return {HESSIAN.result: nest_hessian(problem, diff_struct, block)}

    return Plan(HESSIAN.name, g, (problem.primals,), finish, problem.where, {"mode": "fwd-rev"}, max_program=problem.max_program)


def plan_hvp(problem: Problem, tangents: tuple[Any, ...], mode: str = "fwd-rev", batch: int | None = None) -> Plan:
    """∂²f(x)·v for scalar f, per differentiated argument, without forming the Hessian."""
    if mode not in HVP.modes:
        raise UsageError(f"unknown hvp mode {mode!r}", hint=", ".join(HVP.modes))
    complex_rules.validate(problem, HVP.name)
    require_scalar(problem, HVP.name)

    def g(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        diff = problem.diff(primals)
        return _batched(batch, lambda v: hvp_product(lambda d: h(*d), diff, v, mode, problem.holomorphic))(tangents)

    info = {"mode": mode, "batch": batch}
    return Plan(
        HVP.name,
        g,
        (problem.primals, tangents),
        lambda o: {HVP.result: by_arg(problem, o)},
        problem.where,
        info,
        max_program=problem.max_program,
    )


# One call each, for tests and scripts: plan, compile, run.


def evaluate(problem: Problem) -> Result:
    return execute(plan_eval(problem))


def jvp(problem: Problem, tangents: tuple[Any, ...], batch: int | None = None) -> Result:
    return execute(plan_jvp(problem, tangents, batch))


def vjp(problem: Problem, cotangent: Any, batch: int | None = None) -> Result:
    return execute(plan_vjp(problem, cotangent, batch))


def grad(problem: Problem) -> Result:
    return execute(plan_grad(problem))


def jacobian(problem: Problem, mode: str = "auto", chunk_size: int | None = None) -> Result:
    return execute(plan_jacobian(problem, mode, chunk_size))


def hessian(problem: Problem) -> Result:
    return execute(plan_hessian(problem))


def hvp(problem: Problem, tangents: tuple[Any, ...], mode: str = "fwd-rev", batch: int | None = None) -> Result:
    return execute(plan_hvp(problem, tangents, mode, batch))

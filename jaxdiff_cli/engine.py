"""jit-compiled derivatives. Returns results; never prints.

Every operation is one ``jax.jit`` program whose arguments are *all* the primals (and the
tangents / cotangents): nothing is closed over, so nothing is constant-folded into the
program, the compiled program is the same for any values of the same shapes (which is what
lets the persistent compilation cache hit on the next run), and it is compiled once (AOT:
lower, compile, call), so no second trace can happen between timing and use.

Results are pytrees grouped per differentiated argument: ``{"x": ..., "w": ...}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_cli.errors import FunctionError, SpecError, UsageError
from jaxdiff_cli.functions import describe_user_error

JACOBIAN_MODES = ("fwd", "rev", "auto")
HVP_MODES = ("fwd-rev", "rev-fwd", "rev-rev")


@dataclass(frozen=True)
class Problem:
    """A function, its primals (pytrees of arrays, in argument order) and what to differentiate."""

    fn: Callable[..., Any]
    names: tuple[str, ...]
    primals: tuple[Any, ...]
    argnums: tuple[int, ...]
    where: str = "function"  # for error messages: the spec's function key

    def call(self, *args: Any) -> Any:
        """The user's function, with its output checked to be a pytree of arrays."""
        out = self.fn(*args)
        for leaf in jax.tree.leaves(out):
            if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int)):
                raise FunctionError(f"the function returned a {type(leaf).__name__}, not an array", where=self.where)
        return out

    @property
    def wrt(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.argnums)

    def diff(self, primals: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(primals[i] for i in self.argnums)

    def of_diff(self, primals: Sequence[Any]) -> Callable[..., Any]:
        """f as a function of the differentiated arguments only; the others stay as given."""

        def h(*diff: Any) -> Any:
            args = list(primals)
            for i, d in zip(self.argnums, diff):
                args[i] = d
            return self.call(*args)

        return h


@dataclass
class Timing:
    compile_s: float = 0.0
    run_s: float = 0.0


@dataclass
class Result:
    """What an operation computed: named output pytrees, facts about how, and timing."""

    op: str
    outputs: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)


# --------------------------------------------------------------------------- compile & run


def compile_and_run(g: Callable[..., Any], args: tuple[Any, ...], where: str) -> tuple[Any, Timing]:
    """jit ``g``, compile it once for ``args``, call it, and time both steps.

    Exceptions raised by tracing the user's function become FunctionError (exit 4).
    """
    t0 = time.perf_counter()
    try:
        compiled = jax.jit(g).lower(*args).compile()
    except (SpecError, UsageError, FunctionError):
        raise
    except Exception as exc:
        raise FunctionError(f"the function failed to trace: {describe_user_error(exc)}", where=where) from None
    t1 = time.perf_counter()
    try:
        out = jax.block_until_ready(compiled(*args))
    except Exception as exc:
        raise FunctionError(f"the function failed to run: {describe_user_error(exc)}", where=where) from None
    t2 = time.perf_counter()
    return out, Timing(compile_s=t1 - t0, run_s=t2 - t1)


def output_shape(problem: Problem) -> Any:
    """The output's structure (ShapeDtypeStructs), by abstract evaluation: no compile, no FLOPs."""
    try:
        out = jax.eval_shape(problem.call, *problem.primals)
    except FunctionError:
        raise
    except Exception as exc:
        raise FunctionError(f"the function failed to trace: {describe_user_error(exc)}", where=problem.where) from None
    if not jax.tree.leaves(out):
        raise FunctionError("the function returned no arrays", where=problem.where)
    return out


def require_scalar(problem: Problem, op: str) -> None:
    out = output_shape(problem)
    leaves = jax.tree.leaves(out)
    if len(leaves) != 1 or leaves[0].shape != ():
        shapes = ", ".join(str(tuple(leaf.shape)) for leaf in leaves)
        raise SpecError(
            f"{op} needs a function with a scalar output, but it returns shape {shapes}",
            where=problem.where,
            hint="reduce the output to a scalar (e.g. jnp.sum) or use jacobian",
        )
    if not jnp.issubdtype(leaves[0].dtype, jnp.floating):
        raise SpecError(f"{op} needs a float output, but it returns {leaves[0].dtype}", where=problem.where)


def _by_arg(problem: Problem, per_arg: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(problem.wrt, per_arg))


def _tree_vdot(a: Any, b: Any) -> Any:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _batched(batch: int | None, one: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Map ``one`` over a leading batch axis with vmap (one fused program, never a Python loop)."""
    return jax.vmap(one) if batch is not None else one


# --------------------------------------------------------------------------- operations


def evaluate(problem: Problem) -> Result:
    out, timing = compile_and_run(lambda p: problem.call(*p), (problem.primals,), problem.where)
    if not jax.tree.leaves(out):
        raise FunctionError("the function returned no arrays", where=problem.where)
    return Result("eval", {"value": out}, timing=timing)


def jvp(problem: Problem, tangents: tuple[Any, ...], batch: int | None = None) -> Result:
    """f(x) and ∂f(x)·v; with a batch of tangents, J·V via vmap."""

    def g(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        diff = problem.diff(primals)
        value = h(*diff)
        tangent_out = _batched(batch, lambda t: jax.jvp(h, diff, t)[1])(tangents)
        return value, tangent_out

    (value, tout), timing = compile_and_run(g, (problem.primals, tangents), problem.where)
    return Result("jvp", {"value": value, "jvp": tout}, info={"batch": batch}, timing=timing)


def vjp(problem: Problem, cotangent: Any, batch: int | None = None) -> Result:
    """f(x) and uᵀ·∂f(x), one result per differentiated argument; batched via vmap."""

    def g(primals: tuple[Any, ...], cotangent: Any) -> Any:
        value, pull = jax.vjp(problem.of_diff(primals), *problem.diff(primals))
        return value, _batched(batch, pull)(cotangent)

    (value, cts), timing = compile_and_run(g, (problem.primals, cotangent), problem.where)
    return Result("vjp", {"value": value, "vjp": _by_arg(problem, cts)}, info={"batch": batch}, timing=timing)


def grad(problem: Problem) -> Result:
    """∇f(x) for scalar f, per differentiated argument."""
    require_scalar(problem, "grad")

    def g(primals: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        return jax.value_and_grad(h, argnums=tuple(range(len(problem.argnums))))(*problem.diff(primals))

    (value, grads), timing = compile_and_run(g, (problem.primals,), problem.where)
    return Result("grad", {"value": value, "grad": _by_arg(problem, grads)}, timing=timing)


def choose_mode(problem: Problem) -> tuple[str, str]:
    """auto: forward mode when inputs <= outputs (one JVP per input), else reverse (one VJP per output)."""
    n_in = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(problem.diff(problem.primals)))
    n_out = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(output_shape(problem)))
    if n_in <= n_out:
        return "fwd", f"{n_in} inputs <= {n_out} outputs: forward mode pushes one tangent per input"
    return "rev", f"{n_in} inputs > {n_out} outputs: reverse mode pulls one cotangent per output"


def jacobian(problem: Problem, mode: str = "auto", chunk_size: int | None = None) -> Result:
    """∂f(x), per differentiated argument, with output axes first (as jax.jacfwd/jacrev)."""
    if mode not in JACOBIAN_MODES:
        raise UsageError(f"unknown jacobian mode {mode!r}", hint="fwd, rev or auto")
    info: dict[str, Any] = {"mode": mode}
    if mode == "auto":
        mode, reason = choose_mode(problem)
        info = {"mode": mode, "auto": True, "reason": reason}
    else:
        output_shape(problem)  # a clean error for a bad function before jacfwd's own
    argnums = tuple(range(len(problem.argnums)))
    out_tree: Any = jax.tree.structure(output_shape(problem))
    if chunk_size is not None:
        info["chunk_size"] = chunk_size

    def g(primals: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        diff = problem.diff(primals)
        if chunk_size is not None:
            return _chunked_jacobian(h, diff, mode, chunk_size)
        jac = (jax.jacfwd if mode == "fwd" else jax.jacrev)(h, argnums=argnums)(*diff)
        # jax nests a tuple over arguments inside each output leaf; lift that tuple outward,
        # keeping each argument's block as jax lays it out (output tree, then input tree).
        per_leaf = out_tree.flatten_up_to(jac)
        return tuple(out_tree.unflatten([blocks[k] for blocks in per_leaf]) for k in argnums)

    jac, timing = compile_and_run(g, (problem.primals,), problem.where)
    return Result("jacobian", {"jacobian": _by_arg(problem, jac)}, info=info, timing=timing)


def _chunked_jacobian(h: Callable[..., Any], diff: tuple[Any, ...], mode: str, chunk: int) -> tuple[Any, ...]:
    """The Jacobian pushed (fwd) or pulled (rev) ``chunk`` basis vectors at a time with lax.map.

    Memory holds ``chunk`` tangents at once instead of the whole identity matrix.
    """
    from jax.flatten_util import ravel_pytree

    x_flat, unravel_in = ravel_pytree(diff)
    out_struct = jax.eval_shape(lambda *d: h(*d), *diff)
    y_flat_struct, _ = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_struct))
    n, m = x_flat.size, y_flat_struct.size

    def flat_f(x: Any) -> Any:
        return ravel_pytree(h(*unravel_in(x)))[0]

    if mode == "fwd":

        def column(i: Any) -> Any:
            e = jnp.zeros(n, x_flat.dtype).at[i].set(1)
            return jax.jvp(flat_f, (x_flat,), (e,))[1]

        cols = jax.lax.map(column, jnp.arange(n), batch_size=min(chunk, max(n, 1)))  # (n, m)
        jac = cols.T
    else:
        _, pull = jax.vjp(flat_f, x_flat)

        def row(i: Any) -> Any:
            e = jnp.zeros(m, x_flat.dtype).at[i].set(1)
            return pull(e)[0]

        jac = jax.lax.map(row, jnp.arange(m), batch_size=min(chunk, max(m, 1)))  # (m, n)
    return _unflatten_jacobian(jac, out_struct, diff)


def _unflatten_jacobian(jac: Any, out_struct: Any, diff: tuple[Any, ...]) -> tuple[Any, ...]:
    """A flat (m, n) Jacobian -> per argument, the pytree jax.jacfwd would give."""
    out_leaves, out_tree = jax.tree.flatten(out_struct)
    per_arg = []
    col = 0
    for arg in diff:
        in_leaves, in_tree = jax.tree.flatten(arg)
        blocks_per_out = []
        row = 0
        for o in out_leaves:
            osize = math.prod(o.shape)
            c = col
            inner = []
            for leaf in in_leaves:
                isize = math.prod(leaf.shape)
                block = jac[row : row + osize, c : c + isize].reshape(tuple(o.shape) + tuple(leaf.shape))
                inner.append(block)
                c += isize
            blocks_per_out.append(jax.tree.unflatten(in_tree, inner))
            row += osize
        col += sum(math.prod(leaf.shape) for leaf in in_leaves)
        per_arg.append(jax.tree.unflatten(out_tree, blocks_per_out))
    return tuple(per_arg)


def hessian(problem: Problem) -> Result:
    """∂²f(x) for scalar f (forward-over-reverse), as {arg_i: {arg_j: H_ij}}."""
    require_scalar(problem, "hessian")
    argnums = tuple(range(len(problem.argnums)))

    def g(primals: tuple[Any, ...]) -> Any:
        return jax.hessian(problem.of_diff(primals), argnums=argnums)(*problem.diff(primals))

    hess, timing = compile_and_run(g, (problem.primals,), problem.where)
    nested = {a: _by_arg(problem, row) for a, row in zip(problem.wrt, hess)}
    return Result("hessian", {"hessian": nested}, info={"mode": "fwd-rev"}, timing=timing)


def hvp(problem: Problem, tangents: tuple[Any, ...], mode: str = "fwd-rev", batch: int | None = None) -> Result:
    """∂²f(x)·v for scalar f, per differentiated argument; three compositions of the two modes."""
    if mode not in HVP_MODES:
        raise UsageError(f"unknown hvp mode {mode!r}", hint=", ".join(HVP_MODES))
    require_scalar(problem, "hvp")

    def g(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)

        def f(d: tuple[Any, ...]) -> Any:
            return h(*d)

        diff = problem.diff(primals)

        def one(v: tuple[Any, ...]) -> Any:
            if mode == "fwd-rev":
                return jax.jvp(jax.grad(f), (diff,), (v,))[1]
            if mode == "rev-fwd":
                return jax.grad(lambda d: jax.jvp(f, (d,), (v,))[1])(diff)
            return jax.grad(lambda d: _tree_vdot(jax.grad(f)(d), v))(diff)

        return _batched(batch, one)(tangents)

    out, timing = compile_and_run(g, (problem.primals, tangents), problem.where)
    return Result("hvp", {"hvp": _by_arg(problem, out)}, info={"mode": mode, "batch": batch}, timing=timing)

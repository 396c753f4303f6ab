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
    has_aux: bool = False  # fn returns (output, auxiliary data); only the output is differentiated

    def call(self, *args: Any) -> tuple[Any, Any]:
        """The user's function: (output, auxiliary data or None), each checked to be a pytree of arrays."""
        raw = self.fn(*args)
        if self.has_aux:
            if not (isinstance(raw, (tuple, list)) and len(raw) == 2):
                got = f"a {type(raw).__name__}" + (f" of {len(raw)}" if isinstance(raw, (tuple, list)) else "")
                raise FunctionError(
                    f"with has_aux the function must return a pair (output, auxiliary data), but it returns {got}",
                    where=self.where,
                )
            out, aux = raw
        else:
            out, aux = raw, None
        for leaf in jax.tree.leaves((out, aux)):
            if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int)):
                raise FunctionError(f"the function returned a {type(leaf).__name__}, not an array", where=self.where)
        return out, aux

    def main(self, *args: Any) -> Any:
        """The output that is differentiated."""
        return self.call(*args)[0]

    @property
    def wrt(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.argnums)

    def diff(self, primals: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(primals[i] for i in self.argnums)

    def of_diff(self, primals: Sequence[Any], *, with_aux: bool = False) -> Callable[..., Any]:
        """f as a function of the differentiated arguments only; the others stay as given.

        ``with_aux``: it returns (output, (output, aux)), for JAX's ``has_aux=True`` transformations,
        which then hand back the undifferentiated value and aux at the primal point for free.
        """

        def h(*diff: Any) -> Any:
            args = list(primals)
            for i, d in zip(self.argnums, diff):
                args[i] = d
            out, aux = self.call(*args)
            return (out, (out, aux)) if with_aux else out

        return h


@dataclass
class Timing:
    compile_s: float = 0.0
    run_s: float = 0.0


@dataclass
class Result:
    """What an operation computed: named output pytrees, facts about how, and timing.

    ``value`` is f at the primal point, for the operations that compute it (eval, jvp, vjp, grad);
    the pipeline evaluates it for the others (a derivative where f is not finite is not trusted).
    """

    op: str
    outputs: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    value: Any = None


@dataclass
class Plan:
    """An operation ready to compile: one jit function, its arguments, and how to name its output.

    ``execute`` compiles and runs it once; ``bench`` compiles it once and times many calls.
    """

    op: str
    g: Callable[..., Any]
    args: tuple[Any, ...]
    finish: Callable[[Any], dict[str, Any]]  # the program's output -> named outputs, "value" among them
    where: str
    info: dict[str, Any] = field(default_factory=dict)
    # Bake the primals (always args[0]) into the program as constants. XLA may then precompute and
    # re-lay-out them: measured 7.5x faster for a VJP w.r.t. an MLP's weights on XLA:CPU (layers
    # written h @ W.T), whose layout of array arguments is fixed row-major. But the program then
    # serves only these values, and compiling takes longer.
    bake: bool = False

    @property
    def call_args(self) -> tuple[Any, ...]:
        return self.args[1:] if self.bake else self.args

    def jit_function(self) -> Callable[..., Any]:
        if not self.bake:
            return self.g
        primals = self.args[0]
        return lambda *rest: self.g(primals, *rest)


# --------------------------------------------------------------------------- compile & run


def compile_plan(plan: Plan) -> tuple[Any, float]:
    """AOT-compile a plan (lower, compile): the compiled program and the seconds it took.

    Exceptions raised by tracing the user's function become FunctionError (exit 4).
    """
    t0 = time.perf_counter()
    try:
        compiled = jax.jit(plan.jit_function()).lower(*plan.call_args).compile()
    except (SpecError, UsageError, FunctionError):
        raise
    except Exception as exc:
        raise FunctionError(f"the function failed to trace: {describe_user_error(exc)}", where=plan.where) from None
    return compiled, time.perf_counter() - t0


def call(compiled: Any, plan: Plan) -> Any:
    """One call of a compiled plan, waited for."""
    try:
        return jax.block_until_ready(compiled(*plan.call_args))
    except Exception as exc:
        raise FunctionError(f"the function failed to run: {describe_user_error(exc)}", where=plan.where) from None


def execute(plan: Plan) -> Result:
    """Compile once, call once, time both."""
    compiled, compile_s = compile_plan(plan)
    t0 = time.perf_counter()
    out = call(compiled, plan)
    run_s = time.perf_counter() - t0
    outputs = plan.finish(out)
    return Result(
        plan.op, outputs, info=dict(plan.info), timing=Timing(compile_s=compile_s, run_s=run_s), value=outputs.get("value")
    )


def output_shape(problem: Problem) -> Any:
    """The output's structure (ShapeDtypeStructs), by abstract evaluation: no compile, no FLOPs."""
    try:
        out = jax.eval_shape(problem.main, *problem.primals)
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
        pair = isinstance(out, (tuple, list)) and len(out) == 2 and jax.tree.leaves(out[0])
        hint = "reduce the output to a scalar (e.g. jnp.sum) or use jacobian"
        if pair and not problem.has_aux and all(leaf.shape == () for leaf in jax.tree.leaves(out[0])):
            hint = "it returns a pair: if that is (loss, auxiliary data), pass --has-aux (has_aux: true)"
        raise SpecError(
            f"{op} needs a function with a scalar output, but it returns shape {shapes}", where=problem.where, hint=hint
        )
    if not jnp.issubdtype(leaves[0].dtype, jnp.floating):
        raise SpecError(f"{op} needs a float output, but it returns {leaves[0].dtype}", where=problem.where)


def by_arg(problem: Problem, per_arg: Sequence[Any]) -> dict[str, Any]:
    """Results per differentiated argument, keyed by its name."""
    return dict(zip(problem.wrt, per_arg))


def _tree_vdot(a: Any, b: Any) -> Any:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _batched(batch: int | None, one: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Map ``one`` over a leading batch axis with vmap (one fused program, never a Python loop)."""
    return jax.vmap(one) if batch is not None else one


# --------------------------------------------------------------------------- operations


def _outputs(value_aux: tuple[Any, Any], **named: Any) -> dict[str, Any]:
    """The named outputs, with the value and (when the function has it) the auxiliary data."""
    value, aux = value_aux
    return {"value": value, **named, **({"aux": aux} if aux is not None else {})}


def evaluate(problem: Problem) -> Result:
    return execute(plan_eval(problem))


def plan_eval(problem: Problem) -> Plan:
    def finish(out: Any) -> dict[str, Any]:
        if not jax.tree.leaves(out[0]):
            raise FunctionError("the function returned no arrays", where=problem.where)
        return _outputs(out)

    return Plan("eval", lambda p: problem.call(*p), (problem.primals,), finish, problem.where)


def jvp(problem: Problem, tangents: tuple[Any, ...], batch: int | None = None) -> Result:
    """f(x) and ∂f(x)·v; with a batch of tangents, J·V via vmap."""
    return execute(plan_jvp(problem, tangents, batch))


def plan_jvp(problem: Problem, tangents: tuple[Any, ...], batch: int | None = None) -> Plan:
    def g(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        diff = problem.diff(primals)
        tangent_out = _batched(batch, lambda t: jax.jvp(h, diff, t)[1])(tangents)
        return problem.call(*primals), tangent_out

    return Plan("jvp", g, (problem.primals, tangents), lambda o: _outputs(o[0], jvp=o[1]), problem.where, {"batch": batch})


def vjp(problem: Problem, cotangent: Any, batch: int | None = None) -> Result:
    """f(x) and uᵀ·∂f(x), one result per differentiated argument; batched via vmap."""
    return execute(plan_vjp(problem, cotangent, batch))


def plan_vjp(problem: Problem, cotangent: Any, batch: int | None = None) -> Plan:
    def g(primals: tuple[Any, ...], cotangent: Any) -> Any:
        value, pull, (_, aux) = jax.vjp(problem.of_diff(primals, with_aux=True), *problem.diff(primals), has_aux=True)
        return (value, aux), _batched(batch, pull)(cotangent)

    return Plan(
        "vjp",
        g,
        (problem.primals, cotangent),
        lambda o: _outputs(o[0], vjp=by_arg(problem, o[1])),
        problem.where,
        {"batch": batch},
    )


def grad(problem: Problem) -> Result:
    """∇f(x) for scalar f, per differentiated argument."""
    return execute(plan_grad(problem))


def plan_grad(problem: Problem) -> Plan:
    require_scalar(problem, "grad")

    def g(primals: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals, with_aux=True)
        (_, value_aux), grads = jax.value_and_grad(h, argnums=tuple(range(len(problem.argnums))), has_aux=True)(
            *problem.diff(primals)
        )
        return value_aux, grads

    return Plan("grad", g, (problem.primals,), lambda o: _outputs(o[0], grad=by_arg(problem, o[1])), problem.where)


def choose_mode(problem: Problem) -> tuple[str, str]:
    """auto: forward mode when inputs <= outputs (one JVP per input), else reverse (one VJP per output)."""
    n_in = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(problem.diff(problem.primals)))
    n_out = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(output_shape(problem)))
    if n_in <= n_out:
        return "fwd", f"{n_in} inputs <= {n_out} outputs: forward mode pushes one tangent per input"
    return "rev", f"{n_in} inputs > {n_out} outputs: reverse mode pulls one cotangent per output"


def jacobian(problem: Problem, mode: str = "auto", chunk_size: int | None = None) -> Result:
    """∂f(x), per differentiated argument, with output axes first (as jax.jacfwd/jacrev)."""
    return execute(plan_jacobian(problem, mode, chunk_size))


def plan_jacobian(problem: Problem, mode: str = "auto", chunk_size: int | None = None) -> Plan:
    if mode not in JACOBIAN_MODES:
        raise UsageError(f"unknown jacobian mode {mode!r}", hint="fwd, rev or auto")
    info: dict[str, Any] = {"mode": mode}
    if mode == "auto":
        mode, reason = choose_mode(problem)
        info = {"mode": mode, "auto": True, "reason": reason}
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
        jac = (jax.jacfwd if mode == "fwd" else jax.jacrev)(h, argnums=argnums)(*diff)
        # jax nests a tuple over arguments inside each output leaf; lift that tuple outward,
        # keeping each argument's block as jax lays it out (output tree, then input tree).
        per_leaf = out_tree.flatten_up_to(jac)
        return tuple(out_tree.unflatten([blocks[k] for blocks in per_leaf]) for k in argnums)

    return Plan("jacobian", g, (problem.primals,), lambda o: {"jacobian": by_arg(problem, o)}, problem.where, info)


def flat_function(h: Callable[..., Any], diff: tuple[Any, ...]) -> tuple[Callable[[Any], Any], Any, int, int]:
    """f as a function of one flat vector: (f_flat, x_flat, n inputs, m outputs)."""
    from jax.flatten_util import ravel_pytree

    x_flat, unravel_in = ravel_pytree(diff)

    def flat_f(x: Any) -> Any:
        return ravel_pytree(h(*unravel_in(x)))[0]

    m = int(jax.eval_shape(flat_f, x_flat).size)
    return flat_f, x_flat, int(x_flat.size), m


def jacobian_block(flat_f: Callable[[Any], Any], x: Any, n: int, m: int, mode: str, chunk: int) -> Callable[[Any], Any]:
    """A function of a start index: ``chunk`` columns (fwd, shape (m, chunk)) or rows (rev, (chunk, n)).

    The basis vectors are made inside the program from their indices: no identity matrix is stored.
    """
    if mode == "fwd":

        def columns(start: Any) -> Any:
            onehot = (start + jnp.arange(chunk))[:, None] == jnp.arange(n)[None, :]
            cols = jax.vmap(lambda e: jax.jvp(flat_f, (x,), (e,))[1])(onehot.astype(x.dtype))
            return cols.T  # a chunk-sized transpose, never a full-size one

        return columns
    _, pull = jax.vjp(flat_f, x)

    def rows(start: Any) -> Any:
        onehot = (start + jnp.arange(chunk))[:, None] == jnp.arange(m)[None, :]
        return jax.vmap(lambda e: pull(e)[0])(onehot.astype(x.dtype))

    return rows


def block_starts(total: int, chunk: int) -> list[int]:
    """Start indices of the blocks; the last is moved back to end at ``total`` (no padding, no slicing)."""
    return sorted({min(b * chunk, total - chunk) for b in range(-(-total // chunk))})


def chunked_flat_jacobian(h: Callable[..., Any], diff: tuple[Any, ...], mode: str, chunk: int) -> Any:
    """The flat (m, n) Jacobian, ``chunk`` basis vectors at a time, written in place into one buffer.

    A fori_loop of dynamic_update_slice: XLA updates the buffer in place, so memory is the Jacobian
    plus one chunk's working set (lax.map would stack the chunks, and forward mode then transpose).
    """
    flat_f, x, n, m = flat_function(h, diff)
    total = n if mode == "fwd" else m
    chunk = max(1, min(chunk, total))
    block = jacobian_block(flat_f, x, n, m, mode, chunk)
    starts = jnp.asarray(block_starts(total, chunk))

    def body(i: Any, jac: Any) -> Any:
        start = starts[i]
        where = (0, start) if mode == "fwd" else (start, 0)
        return jax.lax.dynamic_update_slice(jac, block(start), where)

    return jax.lax.fori_loop(0, starts.size, body, jnp.zeros((m, n), x.dtype))


def unflatten_jacobian(jac: Any, out_struct: Any, diff: tuple[Any, ...]) -> tuple[Any, ...]:
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
    """∂²f(x) for scalar f (forward-over-reverse), as nest_hessian lays it out."""
    return execute(plan_hessian(problem))


def nest_hessian(problem: Problem, diff: Sequence[Any], block: Callable[[int, int], Any]) -> dict[str, Any]:
    """The Hessian by name: ``H[a][path in a][b][path in b]`` has shape leaf_a.shape + leaf_b.shape.

    ``block(i, j)`` is the block of arguments i and j as JAX nests it: argument i's tree, each of
    whose leaves is argument j's tree. This is jax.hessian's layout with its tuples over arguments
    replaced by the arguments' names, so every block of a pytree argument is named in full
    (``hessian.p.a.p.b``).
    """
    out: dict[str, Any] = {}
    for i, (a, arg) in enumerate(zip(problem.wrt, diff)):
        tree: Any = jax.tree.structure(arg)
        cols = [tree.flatten_up_to(block(i, j)) for j in range(len(problem.wrt))]
        out[a] = tree.unflatten([{b: cols[j][k] for j, b in enumerate(problem.wrt)} for k in range(tree.num_leaves)])
    return out


def plan_hessian(problem: Problem) -> Plan:
    require_scalar(problem, "hessian")
    argnums = tuple(range(len(problem.argnums)))
    diff_struct = problem.diff(problem.primals)

    def g(primals: tuple[Any, ...]) -> Any:
        return jax.hessian(problem.of_diff(primals), argnums=argnums)(*problem.diff(primals))

    def finish(hess: Any) -> dict[str, Any]:
        def block(i: int, j: int) -> Any:
            tree: Any = jax.tree.structure(diff_struct[i])
            return tree.unflatten([per_j[j] for per_j in tree.flatten_up_to(hess[i])])

        return {"hessian": nest_hessian(problem, diff_struct, block)}

    return Plan("hessian", g, (problem.primals,), finish, problem.where, {"mode": "fwd-rev"})


def hvp(problem: Problem, tangents: tuple[Any, ...], mode: str = "fwd-rev", batch: int | None = None) -> Result:
    """∂²f(x)·v for scalar f, per differentiated argument; three compositions of the two modes."""
    return execute(plan_hvp(problem, tangents, mode, batch))


def plan_hvp(problem: Problem, tangents: tuple[Any, ...], mode: str = "fwd-rev", batch: int | None = None) -> Plan:
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

    return Plan(
        "hvp",
        g,
        (problem.primals, tangents),
        lambda o: {"hvp": by_arg(problem, o)},
        problem.where,
        {"mode": mode, "batch": batch},
    )

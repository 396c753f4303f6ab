"""A problem (function, primals, what to differentiate), a plan (one jit program), and running it.

Every operation is one ``jax.jit`` program whose arguments are *all* the primals (and the
tangents / cotangents): nothing is closed over, so nothing is constant-folded into the program,
the compiled program is the same for any values of the same shapes (which is what lets the
persistent compilation cache hit on the next run), and it is compiled once (AOT: lower, compile,
call), so no second trace can happen between timing and use. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_cli.errors import FunctionError, SpecError, UsageError, function_failed

MAX_OUTPUT_LEAVES = 256
# The traced program of an expression (README: Security): its size is its jaxpr's equations plus
# their operands and results, counted into every sub-jaxpr (scan, cond, while, pjit, custom_jvp ...),
# and measured after tracing, before lowering. XLA's compile time grows faster than linearly with
# it (on the shared 2-core machine, jnp.split into 1,000 pieces then summed: size ~5,000, 5 s to
# compile; 10,000 pieces: 90 s); a hessian of a three-layer network written as an expression is
# about 650. Size is a proxy: some patterns compile slowly below it (jnp.split into 250 pieces then
# jnp.stack: size 507, 7.7 s of CPU), which is why one call may return at most 256 arrays. Module functions are the
# user's own code (they can already loop in Python) and are not bounded.
MAX_PROGRAM = 10_000
# JAX's dtype errors that an integer argument causes ("Integers cannot be raised to negative powers",
# "sin does not accept dtype int32").
_INTEGER_ERROR = re.compile(r"\bu?int(8|16|32|64)\b|\bIntegers?\b")


def _flow(value: Any) -> str:
    """A value as the command line writes it: 2.0, [1.0, 2.0]."""
    return str(value).replace(" ", "") if isinstance(value, list) else repr(value)


@dataclass(frozen=True)
class Problem:
    """A function, its primals (pytrees of arrays, in argument order) and what to differentiate."""

    fn: Callable[..., Any]
    names: tuple[str, ...]
    primals: tuple[Any, ...]
    argnums: tuple[int, ...]
    where: str = "function"  # for error messages: the spec's function key
    has_aux: bool = False  # fn returns (output, auxiliary data); only the output is differentiated
    holomorphic: bool = False  # complex in and out, differentiated as JAX's holomorphic=True (engine/complex_rules.py)
    max_program: int | None = None  # the largest traced program (program_size) of any operation; None: unbounded

    def call(self, *args: Any) -> tuple[Any, Any]:
        """The user's function: (output, auxiliary data or None), each checked to be a pytree of arrays."""
        try:
            raw = self.fn(*args)
        except TypeError as exc:
            hint = self.integer_hint(exc)
            if hint is None:
                raise
            raise function_failed("trace", exc, self.where, hint) from exc
        if self.has_aux:
            if not (isinstance(raw, (tuple, list)) and len(raw) == 2):
                if isinstance(raw, (tuple, list)):
                    got = f"a {type(raw).__name__} of {len(raw)}"
                else:
                    got = "one array" if isinstance(raw, (jax.Array, np.ndarray)) else f"a {type(raw).__name__}"
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
            if jnp.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key):
                raise FunctionError("the function returned a PRNG key, not numbers", where=self.where)
        return out, aux

    def integer_hint(self, exc: BaseException) -> str | None:
        """For a dtype error of JAX (``Integers cannot be raised to negative powers``) where an argument
        that is not differentiated holds integers: whole numbers there keep an integer dtype (README:
        Values), which the user may not have meant."""
        if not _INTEGER_ERROR.search(str(exc)):
            return None
        for i, name in enumerate(self.names):
            if i in self.argnums:
                continue
            leaves = [leaf for leaf in jax.tree.leaves(self.primals[i]) if np.dtype(leaf.dtype).kind in "iu"]
            if not leaves:
                continue
            leaf = np.asarray(leaves[0])
            as_float = _flow(leaf.astype(np.float64).tolist()) if leaf.size <= 4 else "2.0, not 2"
            return (
                f"{name} holds {leaf.dtype}: whole numbers for an argument that is not differentiated keep an integer"
                f" dtype (README: Values); if it is a number, not an index, write {name}: {as_float} in the spec"
                f" (-p {name}={as_float})"
            )
        return None

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

    def sizes(self) -> tuple[int, int]:
        """(inputs, outputs): the number of differentiated entries and of output entries."""
        n_in = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(self.diff(self.primals)))
        n_out = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(output_shape(self)))
        return n_in, n_out


@dataclass
class Timing:
    compile_s: float = 0.0
    run_s: float = 0.0


@dataclass
class Result:
    """What an operation computed: named output pytrees, facts about how, and timing.

    ``value`` is f at the primal point, for the operations that compute it (eval, jvp, vjp, grad);
    the caller evaluates it for the others (a derivative where f is not finite is not trusted).
    """

    op: str
    outputs: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    value: Any = None


@dataclass(frozen=True)
class Plan:
    """An operation ready to compile: one jit function, its arguments, and how to name its output.

    ``execute`` compiles and runs it once; ``bench`` compiles it once and times many calls. A plan
    is frozen: a variant (sharded, baked) is a new plan made with ``dataclasses.replace``.
    """

    op: str
    g: Callable[..., Any]
    args: tuple[Any, ...]
    finish: Callable[[Any], dict[str, Any]]  # the program's output -> named outputs
    where: str
    info: dict[str, Any] = field(default_factory=dict)
    # Bake the primals (always args[0]) into the program as constants. XLA may then precompute and
    # re-lay-out them: measured 7.5x faster for a VJP w.r.t. an MLP's weights on XLA:CPU (layers
    # written h @ W.T), whose layout of array arguments is fixed row-major. But the program then
    # serves only these values, and compiling takes longer.
    bake: bool = False
    max_program: int | None = None  # the problem's bound on the traced program (Problem.max_program)

    @property
    def call_args(self) -> tuple[Any, ...]:
        return self.args[1:] if self.bake else self.args

    def jit_function(self) -> Callable[..., Any]:
        if not self.bake:
            return self.g
        primals = self.args[0]
        return lambda *rest: self.g(primals, *rest)


def compile_plan(plan: Plan) -> tuple[Any, float]:
    """AOT-compile a plan (lower, compile): the compiled program and the seconds it took.

    Exceptions raised by tracing the user's function become FunctionError (exit 4).
    """
    t0 = time.perf_counter()
    try:
        traced = jax.jit(plan.jit_function()).trace(*plan.call_args)
        bound_program(traced.jaxpr, plan.max_program, plan.where, plan.op)
        compiled = traced.lower().compile()
    except (SpecError, UsageError, FunctionError):
        raise
    except Exception as exc:
        raise function_failed("trace", exc, plan.where) from exc
    return compiled, time.perf_counter() - t0


def call(compiled: Any, plan: Plan) -> Any:
    """One call of a compiled plan, waited for."""
    try:
        return jax.block_until_ready(compiled(*plan.call_args))
    except Exception as exc:
        raise function_failed("run", exc, plan.where) from exc


def execute(plan: Plan) -> Result:
    """Compile once, call once, time both."""
    compiled, compile_s = compile_plan(plan)
    t0 = time.perf_counter()
    out = call(compiled, plan)
    run_s = time.perf_counter() - t0
    outputs = plan.finish(out)
    timing = Timing(compile_s=compile_s, run_s=run_s)
    return Result(plan.op, outputs, info=dict(plan.info), timing=timing, value=outputs.get("value"))


def traced_once(problem: Problem) -> Problem:
    """The problem with its function traced once, at its primals, to a jaxpr that every later trace
    at the same argument types replays (``check`` traces f for a dozen results: tracing the user's
    Python, or an expression's interpreter, each time was most of a warm run). The same primitives
    in the same order, custom_jvp and custom_vjp rules included, so the same programs and values.
    Called at other types (the float64 references), the function itself runs. A function that
    cannot be traced here is returned as it is, to fail where it would have failed."""
    fn = problem.fn
    try:
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*problem.primals)
    except Exception:
        return problem
    out_tree = jax.tree.structure(shape)
    in_types = [(tuple(leaf.shape), leaf.dtype) for leaf in jax.tree.leaves(problem.primals)]
    in_tree = jax.tree.structure(problem.primals)

    def replay(*args: Any) -> Any:
        leaves, tree = jax.tree.flatten(args)
        if str(tree) != str(in_tree) or [(tuple(np.shape(a)), jnp.result_type(a)) for a in leaves] != in_types:
            return fn(*args)
        return jax.tree.unflatten(out_tree, jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *leaves))

    return dataclasses.replace(problem, fn=replay)


def execute_all(plans: Sequence[Plan]) -> list[Result]:
    """Several plans as one program: traced, lowered and compiled once, called once (``check`` asks a
    spec for a dozen results; tracing and lowering each as its own program was most of a warm run).

    Each plan keeps its own function, arguments and naming, so each result is what ``execute`` of
    that plan alone gives. Plans are traced in order: a function that fails to trace fails in the
    first plan, as it would alone.
    """
    if len(plans) == 1:
        return [execute(plans[0])]
    if any(p.bake for p in plans):
        raise ValueError("baked plans are compiled alone")
    members = tuple(plans)

    def g(*arg_sets: tuple[Any, ...]) -> tuple[Any, ...]:
        # Each plan a nested jit: its own traced program inside the fused one, bounded as when alone.
        return tuple(jax.jit(p.g)(*args) for p, args in zip(members, arg_sets))

    fused = Plan("+".join(p.op for p in members), g, tuple(p.args for p in members), lambda o: {"all": o}, members[0].where)
    t0 = time.perf_counter()
    try:
        traced = jax.jit(g).trace(*fused.args)
        calls = [eqn.params["jaxpr"] for eqn in traced.jaxpr.eqns if "jaxpr" in eqn.params]
        if len(calls) != len(members):  # not one call per plan (a JAX that inlines them): each traced alone
            calls = [jax.jit(p.g).trace(*p.args).jaxpr for p in members]
        for p, closed in zip(members, calls):
            bound_program(closed, p.max_program, p.where, p.op)
        compiled = traced.lower().compile()
    except (SpecError, UsageError, FunctionError):
        raise
    except Exception as exc:
        raise function_failed("trace", exc, fused.where) from exc
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = call(compiled, fused)
    run_s = time.perf_counter() - t0
    results = []
    for p, o in zip(members, out):
        outputs = p.finish(o)
        timing = Timing(compile_s=compile_s, run_s=run_s)
        results.append(Result(p.op, outputs, info=dict(p.info), timing=timing, value=outputs.get("value")))
    return results


def output_shape(problem: Problem) -> Any:
    """The output's structure (ShapeDtypeStructs), by abstract evaluation: no compile, no FLOPs."""
    try:
        if problem.max_program is None:
            out = jax.eval_shape(problem.main, *problem.primals)
        else:  # the same one trace, with its program kept to be measured
            closed, out = jax.make_jaxpr(problem.main, return_shape=True)(*problem.primals)
            bound_program(closed, problem.max_program, problem.where, "the function")
    except (FunctionError, SpecError):
        raise
    except Exception as exc:
        raise function_failed("trace", exc, problem.where) from exc
    if not jax.tree.leaves(out):
        raise FunctionError("the function returned no arrays", where=problem.where)
    if len(jax.tree.leaves(out)) > MAX_OUTPUT_LEAVES:
        # Compiling a reverse-mode Jacobian of an output of many arrays grows with their cube in
        # XLA (289 arrays: 15 s; 900: 3 minutes), and check compiles one: bounded before it starts.
        raise FunctionError(
            f"the function returns {len(jax.tree.leaves(out)):,} arrays; at most {MAX_OUTPUT_LEAVES}",
            where=problem.where,
            hint="return fewer, larger arrays (jnp.stack)",
        )
    return out


def program_size(closed: Any) -> int:
    """Equations plus their operands and results, into every sub-jaxpr (of scan, cond's branches,
    while's condition and body, pjit, custom_jvp, ...): what lowering and XLA's compile work through."""
    from jax.extend import core

    def subs(param: Any) -> Any:
        if isinstance(param, core.ClosedJaxpr):
            yield param.jaxpr
        elif isinstance(param, core.Jaxpr):
            yield param
        elif isinstance(param, (tuple, list)):
            for item in param:
                yield from subs(item)

    size = 0
    todo = [closed.jaxpr if isinstance(closed, core.ClosedJaxpr) else closed]
    while todo:  # a loop, not recursion: nesting depth is not Python's stack's business
        jaxpr = todo.pop()
        for eqn in jaxpr.eqns:
            size += 1 + len(eqn.invars) + len(eqn.outvars)
            for param in eqn.params.values():
                todo.extend(subs(param))
    return size


def bound_program(closed: Any, limit: int | None, where: str, what: str) -> None:
    """Refuse a traced program larger than ``limit`` (exit 3) before it is lowered and compiled."""
    if limit is None:
        return
    size = program_size(closed)
    if size > limit:
        raise SpecError(
            f"the traced program of {what} has size {size:,} (jaxpr equations plus their operands and results);"
            f" an expression's is at most {limit:,}",
            where=where,
            hint="vectorise (one jnp call over an array, not many over its pieces), loop with lax.fori_loop or"
            " lax.scan, or use a module function (file.py:function), which is not bounded",
        )


def require_numbers(problem: Problem, op: str) -> None:
    """Derivatives of outputs that are not floats (or complex) do not exist: say so before JAX does."""
    kinds = {np.dtype(leaf.dtype).kind for leaf in jax.tree.leaves(output_shape(problem))}
    if kinds - {"f", "c"}:
        dtypes = ", ".join(sorted({str(leaf.dtype) for leaf in jax.tree.leaves(output_shape(problem))}))
        raise SpecError(
            f"{op} needs float or complex outputs, but the function returns {dtypes}",
            where=problem.where,
            hint="return floats (x.astype(jnp.float32)), or use eval",
        )


def is_scalar(out_struct: Any) -> bool:
    """Whether an output structure is one scalar (what grad, hessian and hvp need)."""
    leaves = jax.tree.leaves(out_struct)
    return len(leaves) == 1 and tuple(leaves[0].shape) == ()


def require_scalar(problem: Problem, op: str) -> None:
    out = output_shape(problem)
    leaves = jax.tree.leaves(out)
    if not is_scalar(out):
        shapes = ", ".join(str(tuple(leaf.shape)) for leaf in leaves)
        pair = isinstance(out, (tuple, list)) and len(out) == 2 and jax.tree.leaves(out[0])
        hint = "reduce the output to a scalar (e.g. jnp.sum) or use jacobian"
        if pair and not problem.has_aux and all(leaf.shape == () for leaf in jax.tree.leaves(out[0])):
            hint = "it returns a pair: if that is (loss, auxiliary data), pass --has-aux (has_aux: true)"
        raise SpecError(
            f"{op} needs a function with a scalar output, but it returns shape {shapes}", where=problem.where, hint=hint
        )
    if problem.holomorphic and jnp.issubdtype(leaves[0].dtype, jnp.complexfloating):
        return  # holomorphic=True: a complex scalar, whose derivative is f'(z)
    if not jnp.issubdtype(leaves[0].dtype, jnp.floating):
        complex_hint = "pass --holomorphic if f is holomorphic; else reduce it to a real value, e.g. jnp.abs(z)**2 or z.real"
        raise SpecError(
            f"{op} needs a float output, but it returns {leaves[0].dtype}",
            where=problem.where,
            hint=complex_hint if jnp.issubdtype(leaves[0].dtype, jnp.complexfloating) else None,
        )


def by_arg(problem: Problem, per_arg: Sequence[Any]) -> dict[str, Any]:
    """Results per differentiated argument, keyed by its name."""
    return dict(zip(problem.wrt, per_arg))

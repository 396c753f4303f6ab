"""A spec made ready to compute, and one operation from it: spec -> runtime -> function -> arrays -> plan.

``prepare`` configures JAX, loads and binds the function, builds and places the primals;
``plan_operation`` builds the plan of an operation (with its tangents or cotangents, its mode, chunk
and devices); ``run_operation`` compiles and runs it. The commands, ``check`` and ``run`` all go
through here. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from jaxdiff_cli import startup
from jaxdiff_cli.errors import FunctionError, SpecError, UsageError
from jaxdiff_cli.inputs.binding import bind_primals, check_sizes, fit_dtypes, resolve_wrt
from jaxdiff_cli.inputs.datafiles import Budget
from jaxdiff_cli.inputs.files import CLI
from jaxdiff_cli.inputs.spec import Spec
from jaxdiff_cli.inputs.values import Context, build_like, build_value, per_argument
from jaxdiff_cli.ops import EVAL, GRAD, HESSIAN, HVP, JACOBIAN, JVP, OPERATIONS, OPS, VJP, Op

if TYPE_CHECKING:
    from jax.sharding import Mesh

    from jaxdiff_cli.engine.problem import Plan, Problem, Result
    from jaxdiff_cli.engine.runtime import Cluster, Runtime


@dataclass(frozen=True)
class Options:
    """Per-operation choices from the command line (None: take the spec's, else the default)."""

    mode: str | None = None
    chunk_size: int | str | None = None  # a number, or "auto"
    value: bool = True  # grad: also f(x) (--value)
    bake_primals: bool = False  # compile the primal values into the program (Plan.bake)
    sparse: bool | None = None  # jacobian / hessian: --sparse (None: the spec's sparse:)
    sparse_key: str | None = None  # where ``sparse`` was said in the spec (a run step's key); None: --sparse
    mesh: Mesh | None = None  # spread the operation over these devices (engine/sharding.py)
    order: int | None = None  # derivative / taylor: --order (else the spec's order:)


@dataclass(frozen=True)
class Prepared:
    """A spec with JAX configured, its function loaded and bound, its primals built and placed."""

    spec: Spec
    runtime: Runtime
    problem: Problem
    ctx: Context
    inputs: Mapping[str, Any]  # the primals as built, for the JSON document (an operation adds its vectors: Vectors.shown)
    evaluated: list[Result] = field(default_factory=list)  # f at the primals, once computed (value_of)


class Vectors(NamedTuple):
    """What an operation pushes or pulls, placed on the device, with its batch size and, for the JSON
    document, the values as built (``{"tangents": {...}}``, ``{"cotangents": ...}``)."""

    values: Any
    batch: int | None
    shown: Mapping[str, Any]


def prepare(
    spec: Spec, *, no_cache: bool = False, cluster: Cluster | None = None, device: Any = None, only_spec: bool = False
) -> Prepared:
    """Configure JAX (joining a cluster first, if given), load the function, bind and build the primals.

    ``device`` overrides the spec's device (run spreads its cases over devices this way).
    ``only_spec``: no other spec runs in this process (see runtime.configure).
    """
    import jax

    from jaxdiff_cli.engine import runtime
    from jaxdiff_cli.engine.problem import MAX_PROGRAM, Problem
    from jaxdiff_cli.inputs.functions import load_function

    rt = runtime.configure(
        spec.dtype,
        spec.device,
        not no_cache,
        where=spec.where("device"),
        cluster=cluster,
        only_spec=only_spec,
        spec_dir=spec.base_dir,
    )
    startup.settled()  # JAX is loaded: the collector that jaxdiff's start-up paused runs again
    if device is not None:
        rt = runtime.Runtime(device=device, dtype=rt.dtype, cache=rt.cache)
    loaded = load_function(spec.function, tuple(spec.primals), spec.base_dir, spec.where("function"))
    names = bind_primals(spec, loaded)
    wrt = resolve_wrt(spec, loaded, names)
    values = []
    budget = Budget()  # the data files of all the primals together (YAML aliases can name one many times)
    for n in names:
        # A --primal value's errors name the option; a spec primal's, the spec and its key.
        cli = n in spec.cli_primals
        ctx = Context(spec.dtype, spec.base_dir, CLI if cli else spec.source, budget)
        value = build_value(spec.primals[n], ctx, f"--primal {n}" if cli else f"primals.{n}", integers=n not in wrt)
        values.append(fit_dtypes(value, spec, n, differentiated=n in wrt))
        check_sizes(dict(zip(names, values)), spec)  # as they are built: refused before all are in memory
    problem = Problem(
        fn=loaded.bind(names),
        names=names,
        primals=tuple(jax.device_put(v, rt.device) for v in values),
        argnums=tuple(names.index(n) for n in wrt),
        where=spec.where("function"),
        has_aux=spec.has_aux,
        holomorphic=spec.holomorphic,
        # An expression is data from the spec: its traced programs are bounded. A module function is code.
        max_program=MAX_PROGRAM if loaded.kind in ("lambda", "expression") else None,
    )
    ctx = Context(spec.dtype, spec.base_dir, spec.source)
    return Prepared(spec=spec, runtime=rt, problem=problem, ctx=ctx, inputs={"primals": dict(zip(names, values))})


def tangents(prep: Prepared, op: str) -> Vectors:
    """The tangents of jvp / hvp, shaped like the differentiated primals, and their batch size."""
    import jax

    spec, problem = prep.spec, prep.problem
    if spec.tangents is None:
        example = ", ".join(f"{n}: ..." for n in problem.wrt)
        raise SpecError(
            f"{op} needs tangents shaped like the differentiated primals ({', '.join(problem.wrt)})",
            where=spec.where("tangents"),
            hint=f"add 'tangents: {{{example}}}' or --tangent NAME=VALUE",
        )
    parts = per_argument(spec.tangents, problem.wrt, prep.ctx, "tangents")
    built: list[Any] = []
    batch: int | None = None
    first = ""
    for (name, raw, keypath), primal in zip(parts, problem.diff(problem.primals)):
        ctx = prep.ctx
        if name in spec.cli_tangents:  # a --tangent value's errors name the option
            ctx, keypath = Context(spec.dtype, spec.base_dir, CLI), f"--tangent {name}"
        g = build_like(raw, primal, ctx, keypath, f"primal {name}")
        if built and g.batch != batch:
            said = "unbatched" if batch is None else f"a batch of {batch}"
            now = "unbatched" if g.batch is None else f"a batch of {g.batch}"
            raise SpecError(f"{now}, but {first} is {said}: every tangent needs the same batch axis", where=ctx.at(keypath))
        batch, first = g.batch, keypath
        built.append(g.value)
    placed = tuple(jax.device_put(t, prep.runtime.device) for t in built)
    return Vectors(placed, batch, {"tangents": dict(zip(problem.wrt, built))})


def cotangents(prep: Prepared) -> Vectors:
    """The cotangent of vjp, shaped like the output (1 for a scalar output), and its batch size."""
    import jax

    from jaxdiff_cli.engine.problem import is_scalar, output_shape

    spec = prep.spec
    like = output_shape(prep.problem)
    raw = spec.cotangents
    if raw is None:
        if not is_scalar(like):
            shapes = ", ".join(str(tuple(leaf.shape)) for leaf in jax.tree.leaves(like))
            raise SpecError(
                f"vjp needs cotangents shaped like the output ({shapes})",
                where=spec.where("cotangents"),
                hint="add 'cotangents:' or --cotangent VALUE, e.g. {ones: [...]}",
            )
        raw = 1.0  # the gradient of a scalar: the one natural cotangent
    g = build_like(raw, like, prep.ctx, "cotangents", "output")
    return Vectors(jax.device_put(g.value, prep.runtime.device), g.batch, {"cotangents": g.value})


def directions(prep: Prepared, op: str) -> Vectors:
    """derivative / taylor: the direction v of the line x + s·v, and its batch size.

    The tangents, as jvp reads them; for a function of one scalar without tangents, v = 1.
    """
    import jax
    import jax.numpy as jnp

    problem = prep.problem
    diff = problem.diff(problem.primals)
    if prep.spec.tangents is None:
        if len(diff) == 1 and isinstance(diff[0], jax.Array) and diff[0].shape == ():
            one = jnp.ones_like(diff[0])
            return Vectors((one,), None, {"tangents": {problem.wrt[0]: np.asarray(one)}})
        shapes = ", ".join(f"{n} {tuple(leaf.shape)}" for n, a in zip(problem.wrt, diff) for leaf in jax.tree.leaves(a))
        raise SpecError(
            f"{op} of a function of more than one scalar needs a direction: tangents shaped like {shapes}",
            where=prep.spec.where("tangents"),
            hint="--tangent NAME=VALUE (tangents: in the spec): the derivative is taken along x + s·v",
        )
    return tangents(prep, op)


def order_of(prep: Prepared, op: str, opts: Options) -> int:
    """The order K of derivative / taylor: --order (or the run step's), else the spec's order:."""
    order = opts.order if opts.order is not None else prep.spec.order
    if order is None:
        hint = f"--order K (order: K in the spec, or {{{op}: {{order: K}}}} in run:)"
        if prep.spec.source == CLI:
            raise UsageError(f"{op} needs an order", where="--order", hint=hint)
        raise SpecError(f"{op} needs an order", where=prep.spec.where("order"), hint=hint)
    return order


def mode_of(prep: Prepared, op: str, opts: Options) -> str:
    """The mode of a jacobian, hvp, derivative or taylor: --mode, else the spec's, else the default; checked once."""
    modes = OPS[op].modes
    mode = opts.mode or prep.spec.mode or str(OPS[op].default)
    if mode not in modes:
        hint = ", ".join(modes)
        if opts.mode:
            raise UsageError(f"unknown mode {mode!r}", where="--mode", hint=hint)
        raise SpecError(f"unknown mode {mode!r} for this command", where=prep.spec.where("mode"), hint=hint)
    return mode


def chunk_of(prep: Prepared, opts: Options) -> int | str | None:
    return opts.chunk_size if opts.chunk_size is not None else prep.spec.chunk_size


def vectors_of(prep: Prepared, op: Op) -> Vectors:
    """What ``op`` pushes or pulls (its tangents, its cotangent or its line's direction), and their batch size."""
    if op.vectors == "tangents":
        return tangents(prep, op.name)
    if op.vectors == "cotangents":
        return cotangents(prep)
    if op.vectors == "directions":
        return directions(prep, op.name)
    return Vectors(None, None, {})


def plan_operation(prep: Prepared, name: str, opts: Options) -> Plan:
    """The Plan of one operation (compiled by engine.problem.execute, or timed by bench)."""
    return planned(prep, name, opts)[0]


def planned(prep: Prepared, name: str, opts: Options) -> tuple[Plan, Mapping[str, Any]]:
    """The Plan of one operation, and the vectors it built, by kind, for the JSON document."""
    op = OPS.get(name)
    if op is None:
        raise UsageError(f"unknown operation {name!r}", hint=", ".join(OPERATIONS))
    problem = prep.problem
    if op is not EVAL:
        from jaxdiff_cli.engine.problem import require_numbers

        require_numbers(problem, op.name)
    mode = mode_of(prep, op.name, opts) if op.modes else None
    chunk = chunk_of(prep, opts)
    built = vectors_of(prep, op)
    vectors, batch = built.values, built.batch
    plan: Plan | None = None
    if op.matrix and (opts.mesh is not None or chunk is not None):
        _complex_blocks(prep, op.name, opts.mesh is not None)
    fallback: str | None = None
    if op.matrix:
        plan, fallback = _sparse_plan(prep, op.name, mode or "auto", chunk, opts)
    if opts.mesh is not None and plan is None:
        from jaxdiff_cli.engine.sharding import shard_plan

        plan = shard_plan(
            problem, op.name, opts.mesh, mode=mode, chunk=chunk if isinstance(chunk, int) else None, vectors=vectors, batch=batch
        )
    if plan is None:
        plan = _dense_plan(prep, op, opts, mode or str(op.default), chunk, vectors, batch)
        if opts.mesh is not None:
            plan = replace(plan, info={**plan.info, "devices": "1 (nothing to shard: a single product)"})
        if fallback is not None:
            plan = replace(plan, info={**plan.info, "sparse_fallback": fallback})
    if opts.bake_primals:
        plan = replace(plan, bake=True, info={**plan.info, "baked_primals": True})
    if problem.holomorphic and op is not EVAL:
        plan = replace(plan, info={**plan.info, "holomorphic": True})
    return plan, built.shown


def _dense_plan(
    prep: Prepared, op: Op, opts: Options, mode: str, chunk: int | str | None, vectors: Any, batch: int | None
) -> Plan:
    """The plan of ``op`` on one device, computed whole (or a Jacobian a chunk at a time)."""
    from jaxdiff_cli.engine import plans

    problem = prep.problem
    if op.ordered:
        from jaxdiff_cli.engine import taylor

        return taylor.PLANNERS[op.name](problem, vectors, order_of(prep, op.name, opts), mode, batch)
    planners: dict[Op, Callable[[], Plan]] = {
        EVAL: lambda: plans.plan_eval(problem),
        JVP: lambda: plans.plan_jvp(problem, vectors, batch),
        VJP: lambda: plans.plan_vjp(problem, vectors, batch),
        GRAD: lambda: plans.plan_grad(problem),
        JACOBIAN: lambda: _jacobian_plan(prep, mode, chunk),
        HESSIAN: lambda: plans.plan_hessian(problem),
        HVP: lambda: plans.plan_hvp(problem, vectors, mode, batch),
    }
    return planners[op]()


def _complex_blocks(prep: Prepared, op: str, sharded: bool) -> None:
    """Jacobians a chunk at a time, and over devices, push basis vectors of one dtype through f: for
    complex values that is right only for a holomorphic Jacobian on one device (complex in and out)."""
    from jaxdiff_cli.engine.complex_rules import complex_sides

    complex_in, complex_out = complex_sides(prep.problem)
    if not (complex_in or complex_out):
        return
    if sharded:
        raise SpecError(
            f"--devices spreads real {op}s over devices; this one has complex values",
            where=prep.spec.where("devices"),
            hint="leave out --devices (devices:) to compute it on one device",
        )
    if complex_in != complex_out:
        raise SpecError(
            "--chunk-size takes a Jacobian whose inputs and outputs are both real or both complex",
            where=prep.spec.where("chunk_size"),
            hint="leave out --chunk-size (chunk_size:): this Jacobian is computed whole",
        )


def sparse_of(prep: Prepared, opts: Options) -> bool:
    """Whether a jacobian / hessian was asked for sparse: --sparse, else the spec's sparse:."""
    return opts.sparse if opts.sparse is not None else prep.spec.sparse


def complex_kind(problem: Problem) -> str | None:
    """What is complex about a function (its inputs or outputs), or None for a real one."""
    import jax

    from jaxdiff_cli.engine.complex_rules import complex_sides
    from jaxdiff_cli.engine.problem import output_shape

    complex_in, complex_out = complex_sides(problem)
    if not (complex_in or complex_out):
        return None
    tree = problem.diff(problem.primals) if complex_in else output_shape(problem)
    dtype = next(str(leaf.dtype) for leaf in jax.tree.leaves(tree) if np.dtype(leaf.dtype).kind == "c")
    return f"complex {'inputs' if complex_in else 'outputs'} ({dtype})"


def refuse_complex_sparse(prep: Prepared, opts: Options) -> None:
    """A sparse Jacobian or Hessian is of a real function: refused for complex values, before any work,
    naming where sparse was asked for (the spec's sparse:, a run step's, or --sparse).

    asdex's compressed products take holomorphic=True, but its Hessian pattern does not, and the
    checks, summaries and files of a sparse result (the float64 finite-difference matvecs, the
    eigenvalues, Matrix Market's real field) are of real matrices: one rule, stated once.
    """
    complex_values = complex_kind(prep.problem)
    if complex_values is None:
        return
    message = f"sparse Jacobians and Hessians are of real functions; this one has {complex_values}"
    if opts.sparse is None or opts.sparse_key is not None:
        key = opts.sparse_key or "sparse"
        raise SpecError(message, where=prep.spec.where(key), hint="drop 'sparse: true' to compute it densely")
    raise UsageError(message, where="--sparse", hint="drop --sparse to compute it densely")


def _sparse_plan(prep: Prepared, op: str, mode: str, chunk: int | str | None, opts: Options) -> tuple[Plan | None, str | None]:
    """The sparse plan of a Jacobian or Hessian, or None for the dense one (with why it is not sparse).

    Sparse when asked for (--sparse, sparse: true), and also when the dense matrix cannot fit in
    memory and no dense mode was asked for (jacobian --mode auto, hessian): then it says so. A dense
    mode that cannot fit is refused before any work, suggesting --sparse. A function whose pattern
    asdex cannot find is computed densely with a warning when that fits, and refused when not.
    """
    from jaxdiff_cli.engine import sparse
    from jaxdiff_cli.engine.chunking import MEMORY_SHARE, free_bytes
    from jaxdiff_cli.engine.runtime import pattern_cache_dir

    asked = sparse_of(prep, opts)
    if opts.mesh is not None:
        if asked:
            raise UsageError("a sparse Jacobian or Hessian runs on one device", hint="drop --devices (or devices:)")
        return None, None
    problem = prep.problem
    if asked:
        refuse_complex_sparse(prep, opts)
    need = sparse.dense_bytes(problem, op)
    free = free_bytes(prep.runtime.device)
    fits = need <= MEMORY_SHARE * free
    why = None
    if not asked:
        if fits:
            return None, None
        said = f"the dense {op} needs {sparse.human_bytes(need)}, more than half of the {sparse.human_bytes(free)} free"
        complex_values = complex_kind(problem)
        if complex_values is not None:  # never sent to sparse, which is of real functions only
            products = "jvp and vjp compute" if op == JACOBIAN.name else "hvp computes"
            raise UsageError(
                said, hint=f"a sparse {op} is of a real function, and this one has {complex_values}: {products} products"
            )
        if op == JACOBIAN.name and mode != "auto":
            raise UsageError(said, hint="add --sparse (sparse: true) to compute only its nonzeros")
        if not sparse.available():
            raise UsageError(said, hint=f"--sparse computes only its nonzeros: {sparse.INSTALL_HINT}")
        why = f"{said}: computed sparse"
    size = chunk if isinstance(chunk, int) else None
    cache = pattern_cache_dir() if prep.runtime.cache is not None else None
    try:
        plan = sparse.plan_sparse(problem, op, mode, size, cache)
    except sparse.Undetectable as exc:
        if not fits:
            raise FunctionError(
                f"cannot find the sparsity pattern of the {op}: {exc.reason}",
                where=problem.where,
                hint=f"the dense {op} ({sparse.human_bytes(need)}) does not fit in memory either; jvp and vjp compute products",
            ) from None
        return None, f"{exc.reason}: computed densely instead"
    if why is not None:
        reason = plan.info.get("reason")
        plan = replace(plan, info={**plan.info, "auto": True, "reason": why + (f"; {reason}" if reason else "")})
    return plan, None


def _jacobian_plan(prep: Prepared, mode: str, chunk: int | str | None) -> Plan:
    from jaxdiff_cli.engine import plans
    from jaxdiff_cli.engine.chunking import auto_chunk

    problem = prep.problem
    if chunk != "auto":
        return plans.plan_jacobian(problem, mode, chunk if isinstance(chunk, int) else None)
    resolved, info = plans.jacobian_mode(problem, mode)
    size, why = auto_chunk(problem, resolved, streamed=False)
    plan = plans.plan_jacobian(problem, resolved, size)
    return replace(plan, info={**plan.info, **info, "chunk_size": f"auto: {why}"})


def run_operation(prep: Prepared, op: str, opts: Options) -> Result:
    """Compute one operation."""
    return compute_operation(prep, op, opts)[0]


def compute_operation(prep: Prepared, op: str, opts: Options) -> tuple[Result, Mapping[str, Any]]:
    """Compute one operation: its result, and its inputs by kind (the primals, and the vectors it built)."""
    from jaxdiff_cli.engine.problem import execute

    plan, shown = planned(prep, op, opts)
    result = execute(plan)
    complete(prep, result)
    if op == GRAD.name and not opts.value:
        result.outputs.pop("value")
    return result, {**prep.inputs, **shown}


def run_operations(prep: Prepared, ops: list[str], opts: Options) -> list[Result]:
    """Compute several operations as one program (engine.problem.execute_all), each result as
    ``run_operation`` gives it. An operation whose plan is refused (a spec error) is refused after the
    ones before it ran, as when each runs alone."""
    from jaxdiff_cli.engine.problem import execute_all

    plans: list[Plan] = []
    try:
        for op in ops:
            plans.append(plan_operation(prep, op, opts))
    except Exception:
        if plans:
            execute_all(plans)  # an earlier operation's failure comes first, as it would alone
        raise
    results = execute_all(plans) if plans else []
    for op, result in zip(ops, results):
        complete(prep, result)
        if op == GRAD.name and not opts.value:
            result.outputs.pop("value")
    return results


def complete(prep: Prepared, result: Result) -> None:
    """f's value (and has_aux data) where the operation's own program does not compute it.

    A separate small program, run after the operation's: the derivative programs stay as lean as
    hand-written ones (computing f(x) inside them was measured at up to 3x slower for small
    Jacobians and HVPs), and the value is still there for the non-finite check.
    """
    if result.value is None:
        evaluated = value_of(prep)
        result.value = evaluated.value
        if "aux" in evaluated.outputs:
            result.outputs["aux"] = evaluated.outputs["aux"]


def value_of(prep: Prepared) -> Result:
    """f at the primal point (eval's result), computed once for a prepared spec: check asks for it
    from its expectations, its derivative checks and each operation that does not compute it."""
    from jaxdiff_cli.engine.plans import evaluate

    if not prep.evaluated:
        prep.evaluated.append(evaluate(prep.problem))
    return prep.evaluated[0]


def primary_array(prep: Prepared, op: str, result: Result) -> tuple[np.ndarray, str | None]:
    """The operation's main result as one array (what ``-o FILE.npy`` holds), and its layout when
    the result has several blocks: a Jacobian or Hessian as its flat matrix (the layout of the
    streamed Jacobian), any other result as its leaves raveled and joined, in the order named."""
    from jaxdiff_cli.engine.layout import hessian_matrix, jacobian_matrix, named_leaves
    from jaxdiff_cli.engine.problem import output_shape
    from jaxdiff_cli.engine.sparse import SparseMatrix

    primary = OPS[op].result
    tree = result.outputs[primary]
    if isinstance(tree, SparseMatrix):
        return _dense_of_sparse(prep, tree)
    leaves = list(named_leaves({primary: tree}))
    if len(leaves) == 1:
        return np.asarray(leaves[0][1]), None
    problem = prep.problem
    diff = problem.diff(problem.primals)
    dtype = np.asarray(leaves[0][1]).dtype
    if op == JACOBIAN.name:
        m = jacobian_matrix(tree, output_shape(problem), diff, problem.wrt)
        blocks = f"rows {', '.join(n for n, _ in m.rows)}; columns {', '.join(n for n, _ in m.cols)}"
        return m.data.astype(dtype), f"flat (outputs, inputs) matrix: {blocks}"
    if op == HESSIAN.name:
        m = hessian_matrix(tree, diff, problem.wrt)
        return m.data.astype(dtype), f"flat (inputs, inputs) matrix: {', '.join(n for n, _ in m.rows)}"
    flat = np.concatenate([np.asarray(a).reshape(-1) for _, a in leaves])
    return flat, f"leaves raveled and joined: {', '.join(n for n, _ in leaves)}"


def _dense_of_sparse(prep: Prepared, sm: Any) -> tuple[np.ndarray, str | None]:
    """A sparse result made dense for ``-o FILE.npy``, refused when it does not fit in memory. One block
    (one array in, one out) keeps its shape, as the dense result's; several are the flat matrix."""
    import jax

    from jaxdiff_cli.engine.chunking import MEMORY_SHARE, free_bytes
    from jaxdiff_cli.engine.problem import output_shape
    from jaxdiff_cli.engine.sparse import human_bytes

    free = free_bytes(prep.runtime.device)
    room = int(MEMORY_SHARE * free) // max(sm.dtype.itemsize, 1)
    why = f", more than half of the {human_bytes(free)} free, for -o FILE.npy"
    dense = sm.dense(min(room, sm.shape[0] * sm.shape[1]), why=why)
    if len(sm.rows) == 1 and len(sm.cols) == 1:
        problem = prep.problem
        (arg,) = jax.tree.leaves(problem.diff(problem.primals))
        out = arg if sm.kind == HESSIAN.name else jax.tree.leaves(output_shape(problem))[0]
        return dense.reshape(tuple(out.shape) + tuple(arg.shape)), None
    axes = "(inputs, inputs)" if sm.kind == HESSIAN.name else "(outputs, inputs)"
    return dense, f"flat {axes} matrix: rows {', '.join(n for n, _ in sm.rows)}; columns {', '.join(n for n, _ in sm.cols)}"


def stream_jacobian(prep: Prepared, opts: Options, path: Path, progress: Callable[[int, int], None] | None = None) -> Result:
    """The Jacobian computed chunk by chunk straight into a .npy file (memory-mapped)."""
    from jaxdiff_cli.engine.chunking import auto_chunk, jacobian_to_npy
    from jaxdiff_cli.engine.plans import jacobian_mode

    problem = prep.problem
    mode, info = jacobian_mode(problem, mode_of(prep, JACOBIAN.name, opts))
    chunk = chunk_of(prep, opts)
    why = None
    if chunk == "auto" or chunk is None:
        chunk, why = auto_chunk(problem, mode, streamed=True)
    result = jacobian_to_npy(problem, mode, int(chunk), path, progress)
    complete(prep, result)
    result.info.update(info)
    if why:
        result.info["chunk_size"] = f"auto: {why}"
    return result

"""One operation from a Spec to a Result: spec -> runtime -> function -> arrays -> engine.

The CLI's commands (and later ``check`` / ``run``) all go through :func:`prepare` and
:func:`run_operation`; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxdiff_cli.arrays import Context, build_like, build_value, per_argument
from jaxdiff_cli.errors import SpecError, UsageError
from jaxdiff_cli.spec import OPERATIONS, Spec

# The result an operation is about (what `-o x.npy` saves).
PRIMARY = {
    "eval": "value",
    "jvp": "jvp",
    "vjp": "vjp",
    "grad": "grad",
    "jacobian": "jacobian",
    "hessian": "hessian",
    "hvp": "hvp",
}


@dataclass(frozen=True)
class Options:
    """Per-operation choices from the command line (None: take the spec's, else the default)."""

    mode: str | None = None
    chunk_size: int | str | None = None  # a number, or "auto"
    with_value: bool = True
    bake: bool = False  # compile the primal values into the program (engine.Plan.bake)
    mesh: Any = None  # a jax.sharding.Mesh: spread the operation over its devices (distribute.py)


@dataclass
class Prepared:
    spec: Spec
    runtime: Any  # runtime.Runtime
    problem: Any  # engine.Problem
    ctx: Context
    inputs: dict[str, Any] = field(default_factory=dict)


def prepare(spec: Spec, *, use_cache: bool = True, cluster: Any = None, device: Any = None) -> Prepared:
    """Configure JAX (joining a cluster first, if given), load the function, bind and build the primals.

    ``device`` overrides the spec's device (run spreads its cases over devices this way).
    """
    from jaxdiff_cli import runtime
    from jaxdiff_cli.functions import load_function

    rt = runtime.configure(spec.dtype, spec.device, use_cache, where=spec.where("device"), cluster=cluster)
    if device is not None:
        rt = runtime.Runtime(device=device, dtype=rt.dtype, cache=rt.cache)
    import jax

    loaded = load_function(spec.function, tuple(spec.primals), spec.base_dir, spec.where("function"))
    names = bind_primals(spec, loaded)
    wrt = resolve_wrt(spec, loaded, names)
    ctx = Context(spec.dtype, spec.base_dir, spec.source)
    values = []
    for n in names:
        value = build_value(spec.primals[n], _primal_context(spec, n), _primal_keypath(spec, n), integers=n not in wrt)
        values.append(fit_dtypes(value, spec, n, differentiated=n in wrt))
    primals = tuple(jax.device_put(v, rt.device) for v in values)
    from jaxdiff_cli.engine import Problem

    problem = Problem(
        fn=loaded.bind(names),
        names=names,
        primals=primals,
        argnums=tuple(names.index(n) for n in wrt),
        where=spec.where("function"),
        has_aux=spec.has_aux,
    )
    return Prepared(spec=spec, runtime=rt, problem=problem, ctx=ctx, inputs={"primals": dict(zip(names, values))})


def _primal_context(spec: Spec, name: str) -> Context:
    """A --primal value's errors name the option; a spec primal's, the spec and its key."""
    from jaxdiff_cli.spec import CLI

    source = CLI if name in spec.cli_primals else spec.source
    return Context(spec.dtype, spec.base_dir, source)


def _primal_keypath(spec: Spec, name: str) -> str:
    return f"--primal {name}" if name in spec.cli_primals else f"primals.{name}"


def bind_primals(spec: Spec, loaded: Any) -> tuple[str, ...]:
    """The primals' names in the function's parameter order: each binds to the parameter of its name.

    A primal that is no parameter, or a parameter without a primal or a default, is bad input
    (exit 3): the order in which primals are given never matters.
    """
    from jaxdiff_cli.spec import suggest

    params = loaded.params
    for name in spec.primals:
        if name in params.names or params.var_keyword:
            continue
        if loaded.kind == "expression":
            used = ", ".join(params.names) or "none of the primals"
            message = f"primal {name!r} is not used by the expression (it uses {used})"
        else:
            message = f"primal {name!r} is not a parameter of the function, which takes ({', '.join(params.names)})"
        raise SpecError(message, where=spec.primal_where(name), hint=suggest(name, params.names))
    missing = [n for n in params.names if n in params.required and n not in spec.primals]
    if missing:
        given = ", ".join(spec.primals)
        from jaxdiff_cli.spec import CLI

        raise SpecError(
            f"the function's parameter {missing[0]!r} has no primal (primals given: {given})",
            where=spec.where("--primal" if spec.source == CLI else "primals"),
            hint=suggest(missing[0], list(spec.primals)) or f"add primals.{missing[0]} or --primal {missing[0]}=VALUE",
        )
    return tuple(n for n in params.names if n in spec.primals) + tuple(n for n in spec.primals if n not in params.names)


def resolve_wrt(spec: Spec, loaded: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    """The arguments to differentiate: as named; or argnums, counted in the function's signature as
    JAX counts them; or the function's first parameter."""
    if spec.wrt:
        return spec.wrt
    positional = [n for n in loaded.params.positional] if loaded.kind != "expression" else list(names)
    if spec.argnums is None:
        return names[:1]
    out = []
    for n in spec.argnums:
        if not -len(positional) <= n < len(positional):
            raise SpecError(
                f"argument {n} is out of range: the function takes {len(positional)} positional parameters"
                f" ({', '.join(positional)})",
                where=spec.where("argnums"),
            )
        name = positional[n]
        if name not in spec.primals:
            raise SpecError(f"argument {n} is {name!r}, which has no primal", where=spec.where("argnums"))
        out.append(name)
    if len(set(out)) != len(out):
        raise SpecError("names an argument twice", where=spec.where("argnums"))
    return tuple(out)


def fit_dtypes(value: Any, spec: Spec, name: str, *, differentiated: bool) -> Any:
    """Refuse what JAX would silently change: dtypes never lie about what was computed.

    A differentiated argument is computed in the spec's float dtype, so a leaf of another dtype is
    refused. Without x64 (float32 specs) JAX holds no 64-bit values: an explicit float64 is refused,
    and 64-bit integers (from a file) become int32 only when every value fits.
    """
    import jax

    leaves, tree = jax.tree_util.tree_flatten_with_path(value)
    out = []
    for path, leaf in leaves:
        arr = np.asarray(leaf)
        here = spec.primal_where(name) + "".join(_key_text(k) for k in path)
        dtype = arr.dtype
        if differentiated and dtype.kind != "f":
            raise SpecError(
                f"{dtype} values cannot be differentiated",
                where=here,
                hint="derivatives need floats: write 3.0, or give the constructor dtype: " + spec.dtype,
            )
        if differentiated and dtype != np.dtype(spec.dtype):
            raise SpecError(
                f"a {dtype} value in a {spec.dtype} run: differentiated arguments are computed in the spec's dtype",
                where=here,
                hint=f"drop its dtype:, or set dtype: {dtype} for the whole spec",
            )
        if spec.dtype == "float32" and dtype.itemsize == 8 and dtype.kind == "f":
            raise SpecError(
                "a float64 value in a float32 run, where JAX computes in 32 bits", where=here, hint="set dtype: float64"
            )
        if spec.dtype == "float32" and dtype.itemsize == 8 and dtype.kind in "iu":
            info = np.iinfo(np.int32)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise SpecError("64-bit integers that int32 cannot hold, in a float32 run", where=here, hint="set dtype: float64")
            arr = arr.astype(np.int32)
        out.append(arr)
    return jax.tree_util.tree_unflatten(tree, out)


def _key_text(key: Any) -> str:
    name = getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))
    return f"[{name}]" if isinstance(name, int) else f".{name}"


def _tangents(prep: Prepared, op: str) -> tuple[tuple[Any, ...], int | None]:
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
        g = build_like(raw, primal, prep.ctx, keypath, f"primal {name}")
        if built and g.batch != batch:
            raise SpecError(f"batch {g.batch} does not match batch {batch} of {first}", where=spec.where(keypath))
        batch, first = g.batch, keypath
        built.append(g.value)
    import jax

    prep.inputs["tangents"] = dict(zip(problem.wrt, built))
    return tuple(jax.device_put(t, prep.runtime.device) for t in built), batch


def _cotangents(prep: Prepared) -> tuple[Any, int | None]:
    from jaxdiff_cli.engine import output_shape

    spec = prep.spec
    like = output_shape(prep.problem)
    raw = spec.cotangents
    if raw is None:
        import jax

        leaves = jax.tree.leaves(like)
        if len(leaves) == 1 and leaves[0].shape == ():
            raw = 1.0  # the gradient of a scalar: the one natural cotangent
        else:
            shapes = ", ".join(str(tuple(leaf.shape)) for leaf in leaves)
            raise SpecError(
                f"vjp needs cotangents shaped like the output ({shapes})",
                where=spec.where("cotangents"),
                hint="add 'cotangents:' or --cotangent VALUE, e.g. {ones: [...]}",
            )
    g = build_like(raw, like, prep.ctx, "cotangents", "output")
    import jax

    prep.inputs["cotangents"] = g.value
    return jax.device_put(g.value, prep.runtime.device), g.batch


def plan_operation(prep: Prepared, op: str, opts: Options) -> Any:
    """The engine.Plan of one operation (compiled by engine.execute, or timed by bench)."""
    plan = None
    if opts.mesh is not None:
        from jaxdiff_cli.distribute import shard_plan

        chunk = opts.chunk_size if opts.chunk_size is not None else prep.spec.chunk_size
        plan = shard_plan(prep, op, opts.mode or prep.spec.mode, chunk if isinstance(chunk, int) else None, opts.mesh)
    if plan is None:
        plan = _plan(prep, op, opts)
        if opts.mesh is not None:
            plan.info["devices"] = "1 (nothing to shard: a single product)"
    if opts.bake:
        plan.bake = True
        plan.info["baked_primals"] = True
    return plan


def _plan(prep: Prepared, op: str, opts: Options) -> Any:
    from jaxdiff_cli import engine

    spec, problem = prep.spec, prep.problem
    mode = opts.mode or spec.mode
    chunk = opts.chunk_size if opts.chunk_size is not None else spec.chunk_size
    if op == "eval":
        return engine.plan_eval(problem)
    if op == "jvp":
        tangents, batch = _tangents(prep, op)
        return engine.plan_jvp(problem, tangents, batch)
    if op == "vjp":
        cotangent, batch = _cotangents(prep)
        return engine.plan_vjp(problem, cotangent, batch)
    if op == "grad":
        return engine.plan_grad(problem)
    if op == "jacobian":
        mode = mode or "auto"
        if mode not in engine.JACOBIAN_MODES:
            raise _bad_mode(spec, opts, mode, engine.JACOBIAN_MODES)
        if chunk == "auto":
            from jaxdiff_cli.stream import auto_chunk

            mode = engine.choose_mode(problem)[0] if mode == "auto" else mode
            size, why = auto_chunk(problem, mode, streamed=False)
            plan = engine.plan_jacobian(problem, mode, size)
            plan.info["chunk_size"] = f"auto: {why}"
            return plan
        return engine.plan_jacobian(problem, mode, chunk if isinstance(chunk, int) else None)
    if op == "hessian":
        return engine.plan_hessian(problem)
    if op == "hvp":
        mode = mode or "fwd-rev"
        if mode not in engine.HVP_MODES:
            raise _bad_mode(spec, opts, mode, engine.HVP_MODES)
        tangents, batch = _tangents(prep, op)
        return engine.plan_hvp(problem, tangents, mode, batch)
    raise UsageError(f"unknown operation {op!r}", hint=", ".join(OPERATIONS))


def run_operation(prep: Prepared, op: str, opts: Options) -> Any:
    """Compute one operation; returns an engine.Result."""
    from jaxdiff_cli import engine

    result = engine.execute(plan_operation(prep, op, opts))
    _complete(prep, result)
    if op == "grad" and not opts.with_value:
        result.outputs.pop("value")
    return result


def _complete(prep: Prepared, result: Any) -> None:
    """f's value (and has_aux data) where the operation's own program does not compute it.

    A separate small program, run after the operation's: the derivative programs stay as lean as
    hand-written ones (computing f(x) inside them was measured at up to 3x slower for small
    Jacobians and HVPs), and the value is still there for the non-finite check.
    """
    from jaxdiff_cli import engine

    if result.value is None:
        evaluated = engine.execute(engine.plan_eval(prep.problem))
        result.value = evaluated.value
        if "aux" in evaluated.outputs:
            result.outputs["aux"] = evaluated.outputs["aux"]


def primary_array(prep: Prepared, op: str, result: Any) -> tuple[Any, str | None]:
    """The operation's main result as one array (what ``-o FILE.npy`` holds), and its layout when
    the result has several blocks: a Jacobian or Hessian as its flat matrix (the layout of the
    streamed Jacobian), any other result as its leaves raveled and joined, in the order named."""
    from jaxdiff_cli.render import named_leaves

    tree = result.outputs[PRIMARY[op]]
    leaves = list(named_leaves({PRIMARY[op]: tree}))
    if len(leaves) == 1:
        return np.asarray(leaves[0][1]), None
    from jaxdiff_cli import engine, plot

    problem = prep.problem
    diff = problem.diff(problem.primals)
    if op == "jacobian":
        m = plot.jacobian_matrix(tree, engine.output_shape(problem), diff, problem.wrt)
        blocks = f"rows {', '.join(n for n, _ in m.rows)}; columns {', '.join(n for n, _ in m.cols)}"
        return m.data.astype(leaves[0][1].dtype), f"flat (outputs, inputs) matrix: {blocks}"
    if op == "hessian":
        m = plot.hessian_matrix(tree, diff, problem.wrt)
        return m.data.astype(leaves[0][1].dtype), f"flat (inputs, inputs) matrix: {', '.join(n for n, _ in m.rows)}"
    flat = np.concatenate([np.asarray(a).reshape(-1) for _, a in leaves])
    return flat, f"leaves raveled and joined: {', '.join(n for n, _ in leaves)}"


def stream_jacobian(prep: Prepared, opts: Options, path: Any, progress: Any = None) -> Any:
    """The Jacobian computed chunk by chunk straight into a .npy file (memory-mapped)."""
    from jaxdiff_cli import engine
    from jaxdiff_cli.stream import auto_chunk, jacobian_to_npy

    spec, problem = prep.spec, prep.problem
    mode = opts.mode or spec.mode or "auto"
    if mode not in engine.JACOBIAN_MODES:
        raise _bad_mode(spec, opts, mode, engine.JACOBIAN_MODES)
    reason = None
    if mode == "auto":
        mode, reason = engine.choose_mode(problem)
    chunk = opts.chunk_size if opts.chunk_size is not None else spec.chunk_size
    why = None
    if chunk == "auto" or chunk is None:
        chunk, why = auto_chunk(problem, mode, streamed=True)
    result = jacobian_to_npy(problem, mode, int(chunk), path, progress)
    _complete(prep, result)
    if reason:
        result.info.update({"auto": True, "reason": reason})
    if why:
        result.info["chunk_size"] = f"auto: {why}"
    return result


def _bad_mode(spec: Spec, opts: Options, mode: str, modes: tuple[str, ...]) -> Exception:
    if opts.mode:
        return UsageError(f"unknown mode {mode!r}", where="--mode", hint=", ".join(modes))
    return SpecError(f"unknown mode {mode!r} for this command", where=spec.where("mode"), hint=", ".join(modes))

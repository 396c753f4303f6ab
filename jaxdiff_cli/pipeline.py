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
    """Configure JAX (joining a cluster first, if given), load the function, build and place the primals.

    ``device`` overrides the spec's device (run spreads its cases over devices this way).
    """
    from jaxdiff_cli import runtime
    from jaxdiff_cli.functions import load_function

    rt = runtime.configure(spec.dtype, spec.device, use_cache, where=spec.where("device"), cluster=cluster)
    if device is not None:
        rt = runtime.Runtime(device=device, dtype=rt.dtype, cache=rt.cache)
    import jax

    names = tuple(spec.primals)
    loaded = load_function(spec.function, names, spec.base_dir, spec.where("function"))
    ctx = Context(spec.dtype, spec.base_dir, spec.source)
    values = [build_value(spec.primals[n], ctx, f"primals.{n}") for n in names]
    for name in spec.wrt:
        i = names.index(name)
        for leaf in jax.tree.leaves(values[i]):
            if np.asarray(leaf).dtype.kind != "f":
                raise SpecError(
                    f"{np.asarray(leaf).dtype} values cannot be differentiated",
                    where=spec.where(f"primals.{name}"),
                    hint="derivatives need floats: write 3.0, or give the constructor dtype: float32",
                )
    primals = tuple(jax.device_put(v, rt.device) for v in values)
    from jaxdiff_cli.engine import Problem

    problem = Problem(fn=loaded.fn, names=names, primals=primals, argnums=spec.argnums, where=spec.where("function"))
    return Prepared(spec=spec, runtime=rt, problem=problem, ctx=ctx, inputs={"primals": dict(zip(names, values))})


def _tangents(prep: Prepared, op: str) -> tuple[tuple[Any, ...], int | None]:
    spec, problem = prep.spec, prep.problem
    if spec.tangents is None:
        example = ", ".join(f"{n}: ..." for n in spec.wrt)
        raise SpecError(
            f"{op} needs tangents shaped like the differentiated primals ({', '.join(spec.wrt)})",
            where=spec.where("tangents"),
            hint=f"add 'tangents: {{{example}}}' or --tangent NAME=VALUE",
        )
    parts = per_argument(spec.tangents, spec.wrt, prep.ctx, "tangents")
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

    prep.inputs["tangents"] = dict(zip(spec.wrt, built))
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
    if op == "grad" and not opts.with_value:
        result.outputs.pop("value")
    return result


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
    if reason:
        result.info.update({"auto": True, "reason": reason})
    if why:
        result.info["chunk_size"] = f"auto: {why}"
    return result


def _bad_mode(spec: Spec, opts: Options, mode: str, modes: tuple[str, ...]) -> Exception:
    if opts.mode:
        return UsageError(f"unknown mode {mode!r}", where="--mode", hint=", ".join(modes))
    return SpecError(f"unknown mode {mode!r} for this command", where=spec.where("mode"), hint=", ".join(modes))

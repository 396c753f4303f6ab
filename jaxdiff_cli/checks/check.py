"""``jaxdiff check``: a spec's expected values, and its derivatives against independent references.

For one spec:
- each ``expect:`` entry against the operation that produces it;
- the Jacobian from forward mode and from reverse mode, each against central finite differences
  with Richardson extrapolation (``fd.py``) evaluated in float64. Entry by entry when the input has
  at most ``FULL_COLUMNS`` entries, else along seeded random directions (and uᵀJv for reverse mode);
- the adjoint identity ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ for seeded random u, v;
- for a scalar function, the three HVP modes against each other and against differences of the gradient;
- that every result is finite.

An entry fails only when |AD − reference| > atol + rtol·|reference| + 10·(error estimate of the
reference) + 32·eps(dtype)·(largest |reference| in its output row): the last term is the rounding
that computing the AD value in the spec's dtype can carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxdiff_cli import expect as expect_mod
from jaxdiff_cli.checks import fd
from jaxdiff_cli.errors import JaxdiffError, SpecError, blame, suggest
from jaxdiff_cli.prepare import PRIMARY, Options, Prepared, prepare, run_operation
from jaxdiff_cli.spec import Spec, join

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Problem

FULL_COLUMNS = 64  # inputs up to this size are differenced column by column
DIRECTIONS = 6
ERR_MULTIPLE = 10.0
ROUNDING_MULTIPLE = 32.0
DEFAULT_TOL = {"float32": (1e-4, 1e-6), "float64": (1e-7, 1e-12)}  # (rtol, atol) for AD vs FD
# expect names -> the command that produces them (each command's main result, read backwards)
PRODUCER = {name: op for op, name in PRIMARY.items()} | {"aux": "eval"}  # has_aux data comes with any op


@dataclass(frozen=True)
class Worst:
    """The entry furthest outside its bound."""

    output: str
    index: tuple[int, ...]
    ad: float
    reference: float
    error: float  # error estimate of the reference (0 for exact references)
    bound: float


@dataclass(frozen=True)
class Finding:
    name: str
    passed: bool
    detail: str = ""
    worst: Worst | None = None
    skipped: bool = False


@dataclass
class Report:
    spec: str
    findings: list[Finding] = field(default_factory=list)
    error: JaxdiffError | None = None
    # what the operations computed, by output name (for --update)
    results: dict[str, Any] = field(default_factory=dict)
    updated: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(f.passed for f in self.findings)


@dataclass(frozen=True)
class Settings:
    rtol: float | None = None
    atol: float | None = None
    seed: int = 0
    use_cache: bool = True
    update: bool = False  # record the current results as the spec's expect block


def compare_arrays(
    name: str, output: str, ad: np.ndarray, ref: np.ndarray, err: np.ndarray, dtype: str, tol: tuple[float, float]
) -> Finding:
    """Entry-wise AD vs reference; a failure names the worst entry."""
    ad = np.asarray(ad, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    err = np.broadcast_to(np.asarray(err, dtype=np.float64), ref.shape)
    rtol, atol = tol
    eps = float(np.finfo(dtype).eps)
    finite_ref = np.where(np.isfinite(ref), np.abs(ref), 0.0)
    row = np.max(finite_ref, axis=tuple(range(1, ref.ndim)), keepdims=True) if ref.ndim > 1 else np.max(finite_ref, initial=0.0)
    bound = atol + rtol * np.abs(ref) + ERR_MULTIPLE * err + ROUNDING_MULTIPLE * eps * row
    with np.errstate(invalid="ignore"):
        gap = np.abs(ad - ref)
        bad = ~(gap <= bound)  # NaN anywhere fails
        bad &= np.isfinite(err)  # an unusable reference (every step left the domain: inf error) cannot convict
        ratio = np.where(bound > 0, gap / np.where(bound > 0, bound, 1), np.where(gap > 0, np.inf, 0))
    unusable = int(np.sum(~np.isfinite(err)))
    note = f"{ad.size} entries" + (f", {unusable} without a usable reference" if unusable else "")
    if not bad.any():
        return Finding(name, True, note)
    ratio = np.where(bad, np.nan_to_num(ratio, nan=np.inf), -1)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ad.shape))
    worst = Worst(output, idx, float(ad[idx]), float(ref[idx]), float(err[idx]), float(bound[idx]))
    return Finding(name, False, f"{int(bad.sum())} of {ad.size} entries outside tolerance", worst)


# --------------------------------------------------------------------------- expectations


def check_expectations(prep: Prepared, report: Report) -> None:
    from jaxdiff_cli.engine.layout import named_leaves

    spec: Spec = prep.spec
    if not spec.expect:
        return
    expectations = expect_mod.parse(spec.expect, prep.ctx)
    ops = sorted({PRODUCER.get(e.name.split(".")[0].split("[")[0], "") for e in expectations})
    for op in ops:
        if not op:
            continue
        result = run_operation(prep, op, Options(mode=spec.mode))
        for name, arr in named_leaves(result.outputs):
            report.results.setdefault(name, np.asarray(arr))
    for e in expectations:
        prefix = e.name.split(".")[0].split("[")[0]
        if prefix not in PRODUCER or e.name not in report.results:
            # A misspelt key is a bad spec (exit 3), not a failed check.
            known = sorted(report.results) if prefix in PRODUCER else sorted(PRODUCER)
            listed = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
            raise SpecError(
                f"no output named {e.name!r}",
                where=spec.where(join("expect", e.name)),
                hint=suggest(e.name, known) or f"outputs: {listed}",
            )
        try:
            actual = e.select(report.results[e.name])
        except (IndexError, ValueError) as exc:
            report.findings.append(Finding(f"expect {e.name}", False, f"cannot select: {exc}"))
            continue
        if actual.shape != e.value.shape:
            report.findings.append(Finding(f"expect {e.name}", False, f"shape {actual.shape}, expected {e.value.shape}"))
            continue
        report.findings.append(
            compare_arrays(f"expect {e.name}", e.name, actual, e.value, np.zeros(()), "float64", (e.rtol, e.atol))
        )


# --------------------------------------------------------------------------- AD vs FD


@dataclass
class Flat:
    """What the checks need to know of f at the spec's point, with the flat views that FD works on.

    AD values are taken from the engine's own operations (the same plans, pytree layout and names
    the user gets) and flattened here; the references are float64 finite differences of f as a
    function of one flat vector, which shares nothing with the engine but f itself.
    """

    problem: Problem
    x: Any  # the differentiated arguments raveled, in the spec's dtype
    n: int
    m: int
    dtype: str
    unravel_in: Callable[[Any], Any]
    unravel_out: Callable[[Any], Any]
    f64_batch: Callable[[Any], Any]
    scalar: bool
    forward: bool  # forward mode available (not for custom_vjp functions)
    forward_note: str = ""


def flatten_problem(problem: Problem, dtype: str) -> Flat:
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from jaxdiff_cli.engine.problem import is_scalar, output_shape

    diff = problem.diff(problem.primals)
    x, unravel_in = ravel_pytree(diff)
    out_struct = output_shape(problem)
    out_leaves = jax.tree.leaves(out_struct)
    _, unravel_out = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_struct))
    forward, note = True, ""
    try:
        # eval_shape does not reach custom_vjp's refusal of forward mode; lowering does.
        h = problem.of_diff(problem.primals)
        jax.jit(lambda d: jax.jvp(h, d, d)).lower(diff)
    except TypeError as exc:  # custom_vjp functions have no forward mode
        forward, note = False, f"forward mode not available ({str(exc).splitlines()[0][:80]})"
    return Flat(
        problem=problem,
        x=x,
        n=int(x.size),
        m=sum(int(np.prod(leaf.shape)) for leaf in out_leaves),
        dtype=dtype,
        unravel_in=unravel_in,
        unravel_out=unravel_out,
        f64_batch=_float64_batch(problem, lambda y: ravel_pytree(y)[0]),
        scalar=is_scalar(out_struct),
        forward=forward,
        forward_note=note,
    )


def _rows(tree: Any) -> np.ndarray:
    """A batched pytree (every leaf with a leading batch axis) as (batch, flat) rows, in leaf order."""
    import jax

    leaves = jax.tree.leaves(tree)
    return np.concatenate([np.asarray(leaf, np.float64).reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def _batch_in(flat: Flat, vectors: np.ndarray) -> tuple[Any, ...]:
    """Flat (k, n) vectors as a batch of tangents shaped like the differentiated arguments."""
    import jax
    import jax.numpy as jnp

    return tuple(jax.vmap(flat.unravel_in)(jnp.asarray(vectors, flat.x.dtype)))


def _engine_jvp(flat: Flat, vectors: np.ndarray) -> np.ndarray:
    """J v for each row v, by the engine's jvp operation (batched): (k, m)."""
    from jaxdiff_cli.engine.plans import jvp

    result = jvp(flat.problem, _batch_in(flat, vectors), len(vectors))
    return _rows(result.outputs["jvp"])


def _engine_vjp(flat: Flat, covectors: np.ndarray) -> np.ndarray:
    """Jᵀ u for each row u, by the engine's vjp operation (batched): (k, n)."""
    import jax
    import jax.numpy as jnp

    from jaxdiff_cli.engine.plans import vjp

    cot = jax.vmap(flat.unravel_out)(jnp.asarray(covectors, flat.x.dtype))
    result = vjp(flat.problem, cot, len(covectors))
    return _rows(tuple(result.outputs["vjp"][a] for a in flat.problem.wrt))


def _diff_struct(problem: Problem) -> tuple[Any, ...]:
    return tuple(problem.diff(problem.primals))


def check_derivatives(prep: Prepared, report: Report, settings: Settings) -> None:
    from jaxdiff_cli.engine.diagnostics import nonfinite_note
    from jaxdiff_cli.engine.layout import jacobian_matrix
    from jaxdiff_cli.engine.plans import evaluate, jacobian
    from jaxdiff_cli.engine.problem import output_shape

    spec: Spec = prep.spec
    problem = prep.problem
    # At a point where f itself is not finite, no derivative means anything: say so, compare nothing.
    value_note = nonfinite_note({}, evaluate(problem).value)
    if value_note is not None:
        report.findings.append(Finding("value finite", False, value_note))
        report.findings.append(Finding("AD vs FD", True, "not compared: f is not finite at this point", skipped=True))
        return
    flat = flatten_problem(problem, spec.dtype)
    rtol0, atol0 = DEFAULT_TOL[spec.dtype]
    tol = (settings.rtol if settings.rtol is not None else rtol0, settings.atol if settings.atol is not None else atol0)
    rng = np.random.default_rng(settings.seed)
    x64 = np.asarray(flat.x, dtype=np.float64)
    ad_results: list[tuple[str, Any]] = []

    if flat.n <= FULL_COLUMNS:
        ref = fd.jacobian(flat.f64_batch, x64)
        out_struct = output_shape(problem)
        for mode in ("fwd", "rev") if flat.forward else ("rev",):
            result = jacobian(problem, mode)
            # The user's layout (one block per argument and leaf) assembled back into one matrix.
            ad = jacobian_matrix(result.outputs["jacobian"], out_struct, _diff_struct(problem), problem.wrt).data
            ad_results.append((f"jacobian ({mode})", ad))
            report.findings.append(
                compare_arrays(f"jacobian {mode} vs FD", "jacobian", ad, ref.value, ref.error, spec.dtype, tol)
            )
    else:
        dirs = rng.standard_normal((DIRECTIONS, flat.n))
        ref = fd.directional(flat.f64_batch, x64, dirs)  # (k, m)
        if flat.forward:
            jv = _engine_jvp(flat, dirs)
            ad_results.append(("jvp", jv))
            report.findings.append(
                compare_arrays(f"jvp vs FD ({DIRECTIONS} random directions)", "jvp", jv, ref.value, ref.error, spec.dtype, tol)
            )
        u = rng.standard_normal((DIRECTIONS, flat.m))
        jtu = _engine_vjp(flat, u)
        ad_results.append(("vjp", jtu))
        ad_scalar = np.einsum("kn,kn->k", jtu, dirs)  # (Jᵀu)·v
        ref_scalar = np.einsum("km,km->k", u, ref.value)  # u·(J v)
        ref_err = np.einsum("km,km->k", np.abs(u), ref.error)
        report.findings.append(
            compare_arrays(f"vjp vs FD (uᵀJv, {DIRECTIONS} random pairs)", "vjp", ad_scalar, ref_scalar, ref_err, spec.dtype, tol)
        )

    if flat.forward:
        report.findings.append(_adjoint(flat, rng, tol))
    else:
        report.findings.append(Finding("adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩", True, flat.forward_note, skipped=True))
    if flat.scalar:
        report.findings.extend(_hvp_checks(prep, flat, rng, tol))
        if flat.n <= FULL_COLUMNS and flat.forward:
            finding, hess = _hessian_check(prep, flat, tol)
            report.findings.append(finding)
            ad_results.append(("hessian", hess))
    report.findings.append(_finite(ad_results))


def _adjoint(flat: Flat, rng: np.random.Generator, tol: tuple[float, float]) -> Finding:
    k = 4
    u64 = np.asarray(np.asarray(rng.standard_normal((k, flat.m)), flat.dtype), np.float64)
    v64 = np.asarray(np.asarray(rng.standard_normal((k, flat.n)), flat.dtype), np.float64)
    jv = _engine_jvp(flat, v64)
    jtu = _engine_vjp(flat, u64)
    lhs = np.einsum("km,km->k", u64, jv)
    rhs = np.einsum("kn,kn->k", jtu, v64)
    # The sums' own rounding scales with the sum of absolute products, not with the result.
    scale = np.einsum("km,km->k", np.abs(u64), np.abs(jv)) + np.einsum("kn,kn->k", np.abs(jtu), np.abs(v64))
    eps = float(np.finfo(flat.dtype).eps)
    rounding = ROUNDING_MULTIPLE * eps * scale * math.sqrt(max(flat.n, flat.m))
    return compare_arrays("adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩", "⟨Jᵀu, v⟩", rhs, lhs, rounding / ERR_MULTIPLE, flat.dtype, (tol[0], 0.0))


def _hvp_checks(prep: Prepared, flat: Flat, rng: np.random.Generator, tol: tuple[float, float]) -> list[Finding]:
    from jaxdiff_cli.engine.plans import HVP_MODES, hvp

    k = 2
    v = np.asarray(np.asarray(rng.standard_normal((k, flat.n)), flat.dtype), np.float64)
    modes = HVP_MODES if flat.forward else ("rev-rev",)
    out = {}
    for mode in modes:
        result = hvp(flat.problem, _batch_in(flat, v), mode, k)
        out[mode] = _rows(tuple(result.outputs["hvp"][a] for a in flat.problem.wrt))
    findings = []
    base_name = next(iter(out))
    base = out[base_name]
    for name, hv in out.items():
        if name != base_name:
            findings.append(compare_arrays(f"hvp {name} vs {base_name}", "hvp", hv, base, np.zeros(()), flat.dtype, tol))
    # Differences of the float64 gradient along v are a reference for H v that no HVP mode shares.
    ref = fd.directional(_float64_batch(prep.problem, lambda y: y, grad=True), np.asarray(flat.x, np.float64), v)
    findings.append(compare_arrays(f"hvp {base_name} vs FD of the gradient", "hvp", base, ref.value, ref.error, flat.dtype, tol))
    return findings


def _hessian_check(prep: Prepared, flat: Flat, tol: tuple[float, float]) -> tuple[Finding, np.ndarray]:
    """The engine's Hessian, in the user's layout assembled into one matrix, against FD of the gradient."""
    from jaxdiff_cli.engine.layout import hessian_matrix
    from jaxdiff_cli.engine.plans import hessian

    problem = prep.problem
    result = hessian(problem)
    ad = hessian_matrix(result.outputs["hessian"], _diff_struct(problem), problem.wrt).data
    ref = fd.jacobian(_float64_batch(problem, lambda y: y, grad=True), np.asarray(flat.x, np.float64))
    return compare_arrays("hessian vs FD of the gradient", "hessian", ad, ref.value, ref.error, flat.dtype, tol), ad


def _float64_batch(problem: Problem, post: Callable[[Any], Any], grad: bool = False) -> Callable[[Any], Any]:
    """A vmapped, jitted float64 version of f of the flat inputs (or of its gradient), for FD."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    with jax.enable_x64(True):
        primals64 = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, problem.primals
        )
        _, unravel64 = ravel_pytree(problem.diff(primals64))
        h64 = problem.of_diff(primals64)

        def f64(v: Any) -> Any:
            return jnp.asarray(post(h64(*unravel64(v))), jnp.float64)

        batched = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(f64(v))) if grad else f64))

    def run(points: Any) -> Any:
        with jax.enable_x64(True):
            return np.asarray(batched(jnp.asarray(points, jnp.float64)))

    return run


def _finite(results: list[tuple[str, Any]]) -> Finding:
    from jaxdiff_cli.engine.diagnostics import first_nonfinite

    bad = first_nonfinite(dict(results))
    if bad is None:
        return Finding("finite", True, "all results finite")
    name, idx, value = bad
    return Finding("finite", False, f"{name} is {value} at {list(idx)}", Worst(name, idx, value, math.nan, 0.0, 0.0))


# --------------------------------------------------------------------------- one spec


RECORD_MAX = 10**6  # largest Jacobian / Hessian (entries) that --update records


def environment(prep: Prepared) -> dict[str, str]:
    from jaxdiff_cli.engine.runtime import versions

    return {**versions(), "device": prep.runtime.device.platform, "dtype": prep.spec.dtype}


def collect_results(prep: Prepared, report: Report) -> None:
    """Run every operation the spec supports and keep its outputs (what --update records)."""
    from jaxdiff_cli.engine.layout import named_leaves
    from jaxdiff_cli.engine.problem import is_scalar, output_shape

    spec = prep.spec
    n, m = prep.problem.sizes()
    scalar = is_scalar(output_shape(prep.problem))
    ops = ["eval"]
    ops += ["jvp"] if spec.tangents is not None else []
    ops += ["vjp"] if spec.cotangents is not None or scalar else []
    ops += ["jacobian"] if n * m <= RECORD_MAX else []
    if scalar:
        ops += ["grad"] + (["hessian"] if n * n <= RECORD_MAX else []) + (["hvp"] if spec.tangents is not None else [])
    for op in ops:
        result = run_operation(prep, op, Options(mode=spec.mode if op in ("jacobian", "hvp") else None))
        for name, arr in named_leaves(result.outputs):
            report.results.setdefault(name, np.asarray(arr))


def check_spec(spec: Spec, settings: Settings) -> Report:
    """Every check of one spec; errors (bad spec, failing function) are kept in the report."""
    report = Report(spec=spec.source)
    try:
        prep = prepare(spec, use_cache=settings.use_cache)
        check_expectations(prep, report)
        _note_environment(prep, report)
        check_derivatives(prep, report, settings)
        if settings.update:
            from pathlib import Path

            from jaxdiff_cli.golden import update_spec

            if spec.path is None:
                raise JaxdiffError("--update rewrites a spec file without cases: record this one by hand", where=spec.source)
            collect_results(prep, report)
            report.updated = update_spec(Path(spec.path), report.results, environment(prep), spec.expect)
    except JaxdiffError as exc:
        report.error = exc
    except Exception as exc:  # the user's function raised where no call wraps it; the other specs still run
        report.error = blame(exc, where=spec.where("function"))
    return report


def _note_environment(prep: Prepared, report: Report) -> None:
    """When recorded values fail, say whether jax, the device or the dtype changed since."""
    recorded = prep.spec.expect.get("recorded")
    if not isinstance(recorded, dict):
        return
    now = environment(prep)
    changed = [f"{k} {recorded.get(k)} -> {v}" for k, v in now.items() if str(recorded.get(k)) != v]
    if not changed:
        return
    note = "; recorded in another environment: " + ", ".join(changed)
    report.findings = [
        f if f.passed or not f.name.startswith("expect ") else Finding(f.name, f.passed, f.detail + note, f.worst, f.skipped)
        for f in report.findings
    ]

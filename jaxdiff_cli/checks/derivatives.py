"""AD against independent references: finite differences, the adjoint identity, the HVP modes.

For one spec, through the engine's own operations (the plans, pytree layout and names the user
gets, flattened here):
- the Jacobian from forward mode and from reverse mode, each against central finite differences
  with Richardson extrapolation (``fd.py``) evaluated in float64. Entry by entry when the input has
  at most ``FULL_COLUMNS`` entries, else along seeded random directions (and uᵀJv for reverse mode);
- the adjoint identity ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ for seeded random u, v;
- for a scalar function, the three HVP modes against each other and against differences of the
  gradient, and the Hessian against differences of the gradient;
- that every result is finite; at a point where f itself is not finite, nothing is compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxdiff_cli.checks import fd
from jaxdiff_cli.checks.findings import ERR_MULTIPLE, Finding, Report, adjoint_finding, compare_arrays, finite_results
from jaxdiff_cli.inputs.spec import Spec
from jaxdiff_cli.ops import HVP
from jaxdiff_cli.prepare import Prepared

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Problem

FULL_COLUMNS = 64  # inputs up to this size are differenced column by column
DIRECTIONS = 6
DEFAULT_TOL = {"float32": (1e-4, 1e-6), "float64": (1e-7, 1e-12)}  # (rtol, atol) for AD vs FD


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


def check_derivatives(prep: Prepared, report: Report, rtol: float | None, atol: float | None, seed: int) -> None:
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
        report.not_applied(("adjoint", "hvp", "hessian"), "f is not finite at this point, so nothing is compared")
        return
    from jaxdiff_cli.checks.complex_ad import check_complex, is_complex_problem

    if is_complex_problem(problem):  # differenced in both real directions of each complex entry
        check_complex(prep, report, rtol, atol, seed)
        return
    flat = flatten_problem(problem, spec.dtype)
    if flat.n == 0 or flat.m == 0:
        report.findings.append(Finding("AD vs FD", True, "not compared: the inputs or the outputs have no entries", skipped=True))
        report.not_applied(("adjoint", "hvp", "hessian", "finite"), "the inputs or the outputs have no entries")
        return
    rtol0, atol0 = DEFAULT_TOL[spec.dtype]
    tol = (rtol if rtol is not None else rtol0, atol if atol is not None else atol0)
    rng = np.random.default_rng(seed)
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
        report.not_applied(("ad_vs_fd[fwd]", "hessian"), flat.forward_note)
    if flat.scalar:
        report.findings.extend(_hvp_checks(prep, flat, rng, tol))
        if flat.n <= FULL_COLUMNS and flat.forward:
            finding, hess = _hessian_check(prep, flat, tol)
            report.findings.append(finding)
            ad_results.append(("hessian", hess))
        elif flat.forward:
            report.not_applied(
                ("hessian",),
                f"the Hessian is compared entry by entry for at most {FULL_COLUMNS} inputs (this has {flat.n});"
                " hvp checks second derivatives along random directions",
            )
    else:
        import jax

        from jaxdiff_cli.encoding import shape_text

        shapes = ", ".join(shape_text(leaf.shape) for leaf in jax.tree.leaves(output_shape(problem)))
        report.not_applied(("hvp", "hessian"), f"the output is not a scalar (shape {shapes}): hvp and hessian need one")
    if spec.sparse:
        report.findings.extend(_sparse_checks(prep, flat, rng, tol, ad_results))
    report.findings.append(finite_results(ad_results))


SPARSE_DENSE_MAX = 10**6  # entries: up to this a sparse result is also compared with the dense one


def _sparse_checks(
    prep: Prepared, flat: Flat, rng: np.random.Generator, tol: tuple[float, float], ad_results: list[tuple[str, Any]]
) -> list[Finding]:
    """sparse: true: the sparse Jacobian (and Hessian, for a scalar f) against the dense one computed by
    plain AD (small sizes), and against float64 finite differences along random directions (any size).

    The dense comparison also proves the pattern conservative at this point: a nonzero the pattern
    dropped would be a zero against the dense value. Finite differences share nothing with either.
    """
    from jaxdiff_cli.engine.layout import hessian_matrix, jacobian_matrix
    from jaxdiff_cli.engine.plans import hessian, jacobian
    from jaxdiff_cli.engine.problem import output_shape
    from jaxdiff_cli.engine.sparse import SparseMatrix
    from jaxdiff_cli.prepare import Options, run_operation

    problem = prep.problem
    x64 = np.asarray(flat.x, np.float64)
    findings = []
    for kind in ("jacobian", "hessian") if flat.scalar else ("jacobian",):
        result = run_operation(prep, kind, Options(sparse=True))
        sm = result.outputs[kind]
        if not isinstance(sm, SparseMatrix):
            findings.append(Finding(f"sparse {kind}", True, f"not sparse: {result.info.get('sparse_fallback')}", skipped=True))
            continue
        ad_results.append((f"sparse {kind}", sm.values()))
        if sm.shape[0] * sm.shape[1] <= SPARSE_DENSE_MAX:
            if kind == "jacobian":
                mode = "fwd" if flat.forward else "rev"
                dense = jacobian(problem, mode).outputs["jacobian"]
                ref = jacobian_matrix(dense, output_shape(problem), _diff_struct(problem), problem.wrt).data
            else:
                ref = hessian_matrix(hessian(problem).outputs["hessian"], _diff_struct(problem), problem.wrt).data
            detail = f"sparse {kind} vs dense ({sm.coloring.passes})"
            findings.append(compare_arrays(detail, kind, sm.dense(), ref, np.zeros(()), flat.dtype, tol))
        dirs = rng.standard_normal((DIRECTIONS, flat.n))
        f64 = flat.f64_batch if kind == "jacobian" else _float64_batch(problem, lambda y: y, grad=True)
        fd_ref = fd.directional(f64, x64, dirs)
        ad = np.stack([sm.matvec(d) for d in dirs])
        name = f"sparse {kind} vs FD ({DIRECTIONS} random directions)"
        findings.append(compare_arrays(name, kind, ad, fd_ref.value, fd_ref.error, flat.dtype, tol))
    return findings


def _adjoint(flat: Flat, rng: np.random.Generator, tol: tuple[float, float]) -> Finding:
    k = 4
    u64 = np.asarray(np.asarray(rng.standard_normal((k, flat.m)), flat.dtype), np.float64)
    v64 = np.asarray(np.asarray(rng.standard_normal((k, flat.n)), flat.dtype), np.float64)
    jv = _engine_jvp(flat, v64)
    jtu = _engine_vjp(flat, u64)
    return adjoint_finding("adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩", "⟨Jᵀu, v⟩", u64, jv, jtu, v64, flat.dtype, tol)


def _hvp_checks(prep: Prepared, flat: Flat, rng: np.random.Generator, tol: tuple[float, float]) -> list[Finding]:
    from jaxdiff_cli.engine.plans import hvp

    k = 2
    v = np.asarray(np.asarray(rng.standard_normal((k, flat.n)), flat.dtype), np.float64)
    modes = HVP.modes if flat.forward else ("rev-rev",)
    out = {}
    for mode in modes:
        result = hvp(flat.problem, _batch_in(flat, v), mode, k)
        out[mode] = _rows(tuple(result.outputs["hvp"][a] for a in flat.problem.wrt))
    findings = []
    base_name = next(iter(out))
    base = out[base_name]
    # atol on each entry of H allows atol·Σ|v_j| in each entry of H v, on both sides (as in the adjoint).
    slack = 2 * tol[1] * np.sum(np.abs(v), axis=1, keepdims=True) / ERR_MULTIPLE
    for name, hv in out.items():
        if name != base_name:
            findings.append(compare_arrays(f"hvp {name} vs {base_name}", "hvp", hv, base, slack, flat.dtype, tol))
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
        primals64 = fd.primals64(problem.primals)
        _, unravel64 = ravel_pytree(problem.diff(primals64))
        h64 = problem.of_diff(primals64)

        def f64(v: Any) -> Any:
            return jnp.asarray(post(h64(*unravel64(v))), jnp.float64)

        batched = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(f64(v))) if grad else f64))

    def run(points: Any) -> Any:
        with jax.enable_x64(True):
            return np.asarray(batched(jnp.asarray(points, jnp.float64)))

    return run

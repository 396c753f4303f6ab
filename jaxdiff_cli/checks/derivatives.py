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
    from jaxdiff_cli.engine.problem import Plan, Problem, Result

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
    f64_batch: Callable[[Any], Any]
    scalar: bool
    forward: bool  # forward mode available (not for custom_vjp functions)
    forward_note: str = ""


def flatten_problem(problem: Problem, dtype: str) -> Flat:
    import jax
    from jax.flatten_util import ravel_pytree

    from jaxdiff_cli.engine.problem import is_scalar, output_shape

    diff = problem.diff(problem.primals)
    x = _ravel_host(diff)
    out_struct = output_shape(problem)
    out_leaves = jax.tree.leaves(out_struct)
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
        f64_batch=_float64_batch(problem, lambda y: ravel_pytree(y)[0]),
        scalar=is_scalar(out_struct),
        forward=forward,
        forward_note=note,
    )


def _ravel_host(tree: Any) -> np.ndarray:
    """A pytree's leaves raveled and joined in NumPy, in ravel_pytree's order and common dtype (no
    JAX program for it)."""
    import jax

    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    if not leaves:
        return np.zeros(0, np.float32)
    return np.concatenate([leaf.reshape(-1) for leaf in leaves]).astype(np.result_type(*leaves))


def _unravel_traced(like: Any) -> Callable[[Any], Any]:
    """The inverse of ravel_pytree for pytrees shaped like ``like``, for a traced flat vector."""
    import jax

    leaves, tree = jax.tree.flatten(like)
    shapes = [tuple(leaf.shape) for leaf in leaves]
    dtypes = [leaf.dtype for leaf in leaves]

    def unravel(v: Any) -> Any:
        out, at = [], 0
        for shape, dtype in zip(shapes, dtypes):
            size = int(np.prod(shape))
            out.append(v[at : at + size].reshape(shape).astype(dtype))
            at += size
        return jax.tree.unflatten(tree, out)

    return unravel


def _rows(tree: Any) -> np.ndarray:
    """A batched pytree (every leaf with a leading batch axis) as (batch, flat) rows, in leaf order."""
    import jax

    leaves = jax.tree.leaves(tree)
    return np.concatenate([np.asarray(leaf, np.float64).reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def _unravel_rows(like: Any, vectors: np.ndarray, dtype: Any) -> Any:
    """Flat (k, size) rows as a batch of pytrees shaped like ``like`` (leaf order, as ravel_pytree
    lays them out), built in NumPy: no small JAX programs for splitting and reshaping."""
    import jax

    leaves, tree = jax.tree.flatten(like)
    k = vectors.shape[0]
    out, at = [], 0
    for leaf in leaves:
        size = int(np.prod(leaf.shape))
        out.append(np.asarray(vectors[:, at : at + size], dtype).reshape((k, *leaf.shape)))
        at += size
    return jax.tree.unflatten(tree, out)


def _batch_in(flat: Flat, vectors: np.ndarray) -> tuple[Any, ...]:
    """Flat (k, n) vectors as a batch of tangents shaped like the differentiated arguments."""
    return tuple(_unravel_rows(_diff_struct(flat.problem), vectors, flat.x.dtype))


def _jvp_plan(flat: Flat, vectors: np.ndarray) -> Plan:
    """J v for each row v, by the engine's jvp operation (batched); rows by ``_jvp_rows``."""
    from jaxdiff_cli.engine.plans import plan_jvp

    return plan_jvp(flat.problem, _batch_in(flat, vectors), len(vectors))


def _jvp_rows(result: Result) -> np.ndarray:
    return _rows(result.outputs["jvp"])  # (k, m)


def _vjp_plan(flat: Flat, covectors: np.ndarray) -> Plan:
    """Jᵀ u for each row u, by the engine's vjp operation (batched); rows by ``_vjp_rows``."""
    from jaxdiff_cli.engine.plans import plan_vjp
    from jaxdiff_cli.engine.problem import output_shape

    cot = _unravel_rows(output_shape(flat.problem), covectors, flat.x.dtype)
    return plan_vjp(flat.problem, cot, len(covectors))


def _vjp_rows(flat: Flat, result: Result) -> np.ndarray:
    return _rows(tuple(result.outputs["vjp"][a] for a in flat.problem.wrt))  # (k, n)


def _diff_struct(problem: Problem) -> tuple[Any, ...]:
    return tuple(problem.diff(problem.primals))


class Programs:
    """The AD results a spec's checks compare, asked for first and computed together as one program
    (engine.problem.execute_all): one trace and one compile per spec, not one per result."""

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self.results: dict[str, Result] = {}

    def ask(self, name: str, plan: Plan) -> None:
        self.plans[name] = plan

    def run(self) -> None:
        from jaxdiff_cli.engine.problem import execute_all

        names = [n for n in self.plans if n not in self.results]
        self.results.update(zip(names, execute_all([self.plans[n] for n in names])))

    def __getitem__(self, name: str) -> Result:
        return self.results[name]


def check_derivatives(prep: Prepared, report: Report, rtol: float | None, atol: float | None, seed: int) -> None:
    from jaxdiff_cli.engine.diagnostics import nonfinite_note
    from jaxdiff_cli.engine.layout import jacobian_matrix
    from jaxdiff_cli.engine.plans import plan_jacobian
    from jaxdiff_cli.engine.problem import output_shape
    from jaxdiff_cli.prepare import value_of

    spec: Spec = prep.spec
    problem = prep.problem
    # At a point where f itself is not finite, no derivative means anything: say so, compare nothing.
    value_note = nonfinite_note({}, value_of(prep).value)
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
    modes = ("fwd", "rev") if flat.forward else ("rev",)
    full = flat.n <= FULL_COLUMNS
    hessian_full = flat.scalar and full and flat.forward

    # First every AD result the checks compare (the random draws in the order the checks make them),
    # computed as one program; then the comparisons, in the order the report lists them.
    programs = Programs()
    if full:
        for mode in modes:
            programs.ask(f"jacobian {mode}", plan_jacobian(problem, mode))
    else:
        dirs = rng.standard_normal((DIRECTIONS, flat.n))
        if flat.forward:
            programs.ask("J v", _jvp_plan(flat, dirs))
        u = rng.standard_normal((DIRECTIONS, flat.m))
        programs.ask("Jt u", _vjp_plan(flat, u))
    if flat.forward:
        adjoint_vectors = _adjoint_vectors(flat, rng)
        u64, v64 = adjoint_vectors
        programs.ask("adjoint jvp", _jvp_plan(flat, v64))
        programs.ask("adjoint vjp", _vjp_plan(flat, u64))
    if flat.scalar:
        hvp_vectors = _hvp_plans(flat, rng, programs)
        if hessian_full:
            from jaxdiff_cli.engine.plans import plan_hessian

            programs.ask("H", plan_hessian(problem))
    programs.run()

    if full:
        ref = fd.jacobian(flat.f64_batch, x64)
        out_struct = output_shape(problem)
        for mode in modes:
            result = programs[f"jacobian {mode}"]
            # The user's layout (one block per argument and leaf) assembled back into one matrix.
            ad = jacobian_matrix(result.outputs["jacobian"], out_struct, _diff_struct(problem), problem.wrt).data
            ad_results.append((f"jacobian ({mode})", ad))
            report.findings.append(
                compare_arrays(f"jacobian {mode} vs FD", "jacobian", ad, ref.value, ref.error, spec.dtype, tol)
            )
    else:
        ref = fd.directional(flat.f64_batch, x64, dirs)  # (k, m)
        if flat.forward:
            jv = _jvp_rows(programs["J v"])
            ad_results.append(("jvp", jv))
            report.findings.append(
                compare_arrays(f"jvp vs FD ({DIRECTIONS} random directions)", "jvp", jv, ref.value, ref.error, spec.dtype, tol)
            )
        jtu = _vjp_rows(flat, programs["Jt u"])
        ad_results.append(("vjp", jtu))
        ad_scalar = np.einsum("kn,kn->k", jtu, dirs)  # (Jᵀu)·v
        ref_scalar = np.einsum("km,km->k", u, ref.value)  # u·(J v)
        ref_err = np.einsum("km,km->k", np.abs(u), ref.error)
        report.findings.append(
            compare_arrays(f"vjp vs FD (uᵀJv, {DIRECTIONS} random pairs)", "vjp", ad_scalar, ref_scalar, ref_err, spec.dtype, tol)
        )

    if flat.forward:
        report.findings.append(_adjoint(flat, adjoint_vectors, programs, tol))
    else:
        report.findings.append(Finding("adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩", True, flat.forward_note, skipped=True))
        report.not_applied(("ad_vs_fd[fwd]", "hessian"), flat.forward_note)
    if flat.scalar:
        grad64 = _float64_batch(problem, lambda y: y, grad=True)  # one traced function for both references
        report.findings.extend(_hvp_checks(flat, hvp_vectors, programs, grad64, tol))
        if hessian_full:
            finding, hess = _hessian_check(prep, flat, programs, grad64, tol)
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


def _adjoint_vectors(flat: Flat, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The adjoint identity's u (k, m) and v (k, n), drawn in the spec's dtype, held in float64."""
    k = 4
    u64 = np.asarray(np.asarray(rng.standard_normal((k, flat.m)), flat.dtype), np.float64)
    v64 = np.asarray(np.asarray(rng.standard_normal((k, flat.n)), flat.dtype), np.float64)
    return u64, v64


def _adjoint(flat: Flat, vectors: tuple[np.ndarray, np.ndarray], programs: Programs, tol: tuple[float, float]) -> Finding:
    u64, v64 = vectors
    jv = _jvp_rows(programs["adjoint jvp"])
    jtu = _vjp_rows(flat, programs["adjoint vjp"])
    return adjoint_finding("adjoint ⟨u, Jv⟩ = ⟨Jᵀu, v⟩", "⟨Jᵀu, v⟩", u64, jv, jtu, v64, flat.dtype, tol)


def _hvp_plans(flat: Flat, rng: np.random.Generator, programs: Programs) -> np.ndarray:
    """The HVP modes along two random directions, asked of ``programs``; the directions (k, n)."""
    from jaxdiff_cli.engine.plans import plan_hvp

    k = 2
    v = np.asarray(np.asarray(rng.standard_normal((k, flat.n)), flat.dtype), np.float64)
    for mode in HVP.modes if flat.forward else ("rev-rev",):
        programs.ask(f"hvp {mode}", plan_hvp(flat.problem, _batch_in(flat, v), mode, k))
    return v


def _hvp_checks(
    flat: Flat, v: np.ndarray, programs: Programs, grad64: Callable[[Any], Any], tol: tuple[float, float]
) -> list[Finding]:
    out = {}
    for mode in HVP.modes if flat.forward else ("rev-rev",):
        out[mode] = _rows(tuple(programs[f"hvp {mode}"].outputs["hvp"][a] for a in flat.problem.wrt))
    findings = []
    base_name = next(iter(out))
    base = out[base_name]
    # atol on each entry of H allows atol·Σ|v_j| in each entry of H v, on both sides (as in the adjoint).
    slack = 2 * tol[1] * np.sum(np.abs(v), axis=1, keepdims=True) / ERR_MULTIPLE
    for name, hv in out.items():
        if name != base_name:
            findings.append(compare_arrays(f"hvp {name} vs {base_name}", "hvp", hv, base, slack, flat.dtype, tol))
    # Differences of the float64 gradient along v are a reference for H v that no HVP mode shares.
    ref = fd.directional(grad64, np.asarray(flat.x, np.float64), v)
    findings.append(compare_arrays(f"hvp {base_name} vs FD of the gradient", "hvp", base, ref.value, ref.error, flat.dtype, tol))
    return findings


def _hessian_check(
    prep: Prepared, flat: Flat, programs: Programs, grad64: Callable[[Any], Any], tol: tuple[float, float]
) -> tuple[Finding, np.ndarray]:
    """The engine's Hessian, in the user's layout assembled into one matrix, against FD of the gradient."""
    from jaxdiff_cli.engine.layout import hessian_matrix

    problem = prep.problem
    ad = hessian_matrix(programs["H"].outputs["hessian"], _diff_struct(problem), problem.wrt).data
    ref = fd.jacobian(grad64, np.asarray(flat.x, np.float64))
    return compare_arrays("hessian vs FD of the gradient", "hessian", ad, ref.value, ref.error, flat.dtype, tol), ad


def _float64_batch(problem: Problem, post: Callable[[Any], Any], grad: bool = False) -> Callable[[Any], Any]:
    """A vmapped, jitted float64 version of f of the flat inputs (or of its gradient), for FD."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        primals64 = fd.primals64(problem.primals, on_host=True)
        unravel64 = _unravel_traced(problem.diff(primals64))
        h64 = problem.of_diff(primals64)

        def f64(v: Any) -> Any:
            return jnp.asarray(post(h64(*unravel64(v))), jnp.float64)

        batched = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(f64(v))) if grad else f64))

    def run(points: Any) -> Any:
        with jax.enable_x64(True):
            return np.asarray(batched(jnp.asarray(points, jnp.float64)))

    return run

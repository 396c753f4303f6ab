"""AD of functions with complex values against finite differences in both real directions.

A function of z = x + iy is, to finite differences, a map of real vectors: the real and imaginary
parts in, the real and imaginary parts out. So each complex input entry is differenced along the
real axis (x) and along the imaginary axis (y), by central differences with Richardson
extrapolation (``fd.py``) in complex128, and the engine's operations are compared with that real
Jacobian J_R under JAX's conventions (``engine/complex_rules.py``):

- jvp along every real direction (t = e_k and t = i·e_k), or seeded random ones for large inputs;
- vjp: JAX's transpose under the pairing Re Σ a·b, so vjp(u)_k = Re⟨u, ∂f/∂x_k⟩ − i·Re⟨u, ∂f/∂y_k⟩;
- the adjoint identity Re⟨u, J t⟩ = Re⟨vjp(u), t⟩ for seeded complex u, t;
- grad of a real scalar: ∂f/∂x − i·∂f/∂y;
- with --holomorphic: the Jacobian (forward and reverse mode) against the real-axis differences, and
  i times it against the imaginary-axis ones; and the Cauchy-Riemann equations ∂f/∂y = i·∂f/∂x on
  the differences themselves, which convicts a function that is not holomorphic, whatever AD says.

Second derivatives of complex functions are not compared (a row says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxdiff_cli.checks import fd
from jaxdiff_cli.checks.findings import (
    Finding,
    Report,
    adjoint_finding,
    compare_arrays,
    finite_results,
)
from jaxdiff_cli.dtypes import real_dtype
from jaxdiff_cli.prepare import Prepared

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Problem

FULL_COLUMNS = 64  # real input coordinates up to this many are differenced one by one
DIRECTIONS = 6
DEFAULT_TOL = {"float32": (1e-4, 1e-6), "float64": (1e-7, 1e-12)}  # (rtol, atol), by the dtype of the parts
CR_NAME = "Cauchy-Riemann ∂f/∂y = i·∂f/∂x (FD)"
# The real Jacobian's name in a failure: rows are the outputs' real parts then their imaginary parts,
# columns the inputs' real parts (x) then their imaginary parts (y), each part only where it exists.
REAL_J = "J_R"


def is_complex_problem(problem: Problem) -> bool:
    """Whether the differentiated inputs or the outputs hold complex values (or --holomorphic says so)."""
    from jaxdiff_cli.engine.complex_rules import complex_sides

    return problem.holomorphic or any(complex_sides(problem))


@dataclass
class Real:
    """f at the spec's point as a map of real coordinates: n complex (or real) input entries, whose
    n_real real coordinates are (Re, Im) or the values themselves; m output entries, m_real outputs."""

    problem: Problem
    x: Any  # the differentiated arguments raveled (complex or real), in the spec's dtype
    complex_in: bool
    complex_out: bool
    n: int
    m: int
    unravel_in: Callable[[Any], Any]
    unravel_out: Callable[[Any], Any]
    out_dtype: Any  # of the raveled output (complex if any output leaf is)
    f_batch: Callable[[Any], Any]  # (p, n_real) real coordinates -> (p, m_real), in float64 / complex128

    @property
    def n_real(self) -> int:
        return 2 * self.n if self.complex_in else self.n

    @property
    def m_real(self) -> int:
        return 2 * self.m if self.complex_out else self.m

    def point(self, coords: np.ndarray) -> np.ndarray:
        """Real coordinates (k, n_real) -> input vectors (k, n), complex where the input is."""
        return coords[:, : self.n] + 1j * coords[:, self.n :] if self.complex_in else coords

    def coords_out(self, values: np.ndarray) -> np.ndarray:
        """Output vectors (k, m) -> their real coordinates (k, m_real): (Re, Im) for complex outputs."""
        return np.concatenate([values.real, values.imag], axis=1) if self.complex_out else np.real(values)

    def dual_out(self, u: np.ndarray) -> np.ndarray:
        """A cotangent u (k, m) as the real vector whose dot with J_R t is Re⟨u, J t⟩: (Re u, −Im u)."""
        return np.concatenate([u.real, -u.imag], axis=1) if self.complex_out else np.real(u)

    def dual_in(self, w: np.ndarray) -> np.ndarray:
        """vjp results w (k, n) as the real vectors whose dot with a direction d is Re⟨w, t(d)⟩."""
        return np.concatenate([w.real, -w.imag], axis=1) if self.complex_in else np.real(w)


def real_problem(problem: Problem) -> Real:
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from jaxdiff_cli.engine.complex_rules import complex_sides
    from jaxdiff_cli.engine.problem import output_shape

    complex_in, complex_out = complex_sides(problem)
    x, unravel_in = ravel_pytree(problem.diff(problem.primals))
    out_struct = output_shape(problem)
    _, unravel_out = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_struct))
    n = int(x.size)
    m = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(out_struct))

    with jax.enable_x64(True):
        primals64 = fd.primals64(problem.primals)
        _, unravel64 = ravel_pytree(problem.diff(primals64))
        h64 = problem.of_diff(primals64)

        def g(r: Any) -> Any:
            z = r[:n] + 1j * r[n:] if complex_in else r
            y = ravel_pytree(h64(*unravel64(z)))[0]
            return jnp.concatenate([jnp.real(y), jnp.imag(y)]) if complex_out else jnp.real(y)

        batched = jax.jit(jax.vmap(g))

    def f_batch(points: Any) -> Any:
        with jax.enable_x64(True):
            return np.asarray(batched(jnp.asarray(points, jnp.float64)))

    out_dtype = np.result_type(*[np.dtype(leaf.dtype) for leaf in jax.tree.leaves(out_struct)])
    return Real(problem, x, complex_in, complex_out, n, m, unravel_in, unravel_out, out_dtype, f_batch)


def _coords(real: Real) -> np.ndarray:
    x = np.asarray(real.x)
    return np.concatenate([x.real, x.imag]).astype(np.float64) if real.complex_in else x.astype(np.float64)


def _tangents(real: Real, vectors: np.ndarray) -> tuple[Any, ...]:
    """(k, n) input vectors as a batch of tangents shaped like the differentiated arguments."""
    import jax
    import jax.numpy as jnp

    return tuple(jax.vmap(real.unravel_in)(jnp.asarray(vectors, real.x.dtype)))


def _rows(tree: Any) -> np.ndarray:
    import jax

    leaves = jax.tree.leaves(tree)
    return np.concatenate([np.asarray(leaf).reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def _engine_jvp(real: Real, vectors: np.ndarray) -> np.ndarray:
    """J t for each row t (k, n) by the engine's batched jvp: (k, m)."""
    from jaxdiff_cli.engine.plans import jvp

    return _rows(jvp(real.problem, _tangents(real, vectors), len(vectors)).outputs["jvp"])


def _engine_vjp(real: Real, covectors: np.ndarray) -> np.ndarray:
    """vjp(u) for each row u (k, m) by the engine's batched vjp: (k, n)."""
    import jax
    import jax.numpy as jnp

    from jaxdiff_cli.engine.plans import vjp

    # ravel_pytree's unravel gives each output leaf its own dtype back (a real leaf: the real part).
    cot = jax.vmap(real.unravel_out)(jnp.asarray(covectors, real.out_dtype))
    result = vjp(real.problem, cot, len(covectors))
    return _rows(tuple(result.outputs["vjp"][a] for a in real.problem.wrt))


def _random_in(real: Real, rng: np.random.Generator, k: int) -> np.ndarray:
    """Seeded input vectors (k, n), complex where the input is, exactly representable in its dtype."""
    v = rng.standard_normal((k, real.n_real))
    return np.asarray(real.point(v), np.asarray(real.x).dtype)


def _random_out(real: Real, rng: np.random.Generator, k: int) -> np.ndarray:
    u = rng.standard_normal((k, real.m_real))
    u = u[:, : real.m] + 1j * u[:, real.m :] if real.complex_out else u
    return np.asarray(u, real.out_dtype)


def check_complex(prep: Prepared, report: Report, rtol: float | None, atol: float | None, seed: int) -> None:
    """Every check of a function with complex values (the caller has checked that f is finite)."""
    problem = prep.problem
    dtype = real_dtype(prep.spec.dtype)
    rtol0, atol0 = DEFAULT_TOL[dtype]
    tol = (rtol if rtol is not None else rtol0, atol if atol is not None else atol0)
    rng = np.random.default_rng(seed)
    real = real_problem(problem)
    r0 = _coords(real)
    results: list[tuple[str, Any]] = []

    if real.n_real <= FULL_COLUMNS:
        ref = fd.jacobian(real.f_batch, r0)  # J_R: (m_real, n_real)
        basis = real.point(np.eye(real.n_real))  # every real direction as an input vector
        jt = _engine_jvp(real, np.asarray(basis, np.asarray(real.x).dtype))  # (n_real, m)
        results.append(("jvp", jt))
        report.findings.append(
            compare_arrays("jvp vs FD (every real direction)", REAL_J, real.coords_out(jt).T, ref.value, ref.error, dtype, tol)
        )
        u = _random_out(real, rng, 4)
        w = _engine_vjp(real, u)
        results.append(("vjp", w))
        # vjp(u) as real coordinates against J_Rᵀ u, both under the pairing Re Σ a·b.
        ref_w = real.dual_out(u) @ ref.value
        err_w = np.abs(real.dual_out(u)) @ ref.error
        report.findings.append(
            compare_arrays("vjp vs FD (Re⟨vjp(u), t⟩ = Re⟨u, J t⟩)", "vjp", real.dual_in(w), ref_w, err_w, dtype, tol)
        )
        if not real.complex_out and real.m == 1 and real.complex_in:
            report.findings.append(_grad_check(real, ref, dtype, tol, results))
        if problem.holomorphic:
            report.findings.extend(_holomorphic_checks(real, ref, dtype, tol, results))
        else:
            report.findings.append(_one_sided_jacobian(real, ref, dtype, tol, results))
    else:
        dirs = rng.standard_normal((DIRECTIONS, real.n_real))
        ref_d = fd.directional(real.f_batch, r0, dirs)  # (k, m_real)
        jt = _engine_jvp(real, np.asarray(real.point(dirs), np.asarray(real.x).dtype))
        results.append(("jvp", jt))
        report.findings.append(
            compare_arrays(
                f"jvp vs FD ({DIRECTIONS} random real directions)",
                "jvp",
                real.coords_out(jt),
                ref_d.value,
                ref_d.error,
                dtype,
                tol,
            )
        )
        u = _random_out(real, rng, DIRECTIONS)
        w = _engine_vjp(real, u)
        results.append(("vjp", w))
        ad_s = np.einsum("kn,kn->k", real.dual_in(w), dirs)
        ref_s = np.einsum("km,km->k", real.dual_out(u), ref_d.value)
        err_s = np.einsum("km,km->k", np.abs(real.dual_out(u)), ref_d.error)
        report.findings.append(
            compare_arrays(f"vjp vs FD (Re⟨u, J t⟩, {DIRECTIONS} random pairs)", "vjp", ad_s, ref_s, err_s, dtype, tol)
        )
        if problem.holomorphic:
            report.findings.append(_cauchy_riemann_directions(real, r0, rng, dtype, tol))
    report.findings.append(_adjoint(real, rng, dtype, tol))
    report.findings.append(Finding("second derivatives", True, "not compared for complex values (hessian, hvp)", skipped=True))
    report.findings.append(finite_results(results))


def _grad_check(real: Real, ref: fd.Estimate, dtype: str, tol: tuple[float, float], results: list[tuple[str, Any]]) -> Finding:
    """grad of a real scalar of complex inputs is ∂f/∂x − i·∂f/∂y (JAX's convention)."""
    import jax

    from jaxdiff_cli.engine.plans import grad

    result = grad(real.problem)
    per_arg = tuple(result.outputs["grad"][a] for a in real.problem.wrt)  # leaves in the order the input is raveled
    ad = np.concatenate([np.asarray(leaf).reshape(-1) for leaf in jax.tree.leaves(per_arg)])
    results.append(("grad", ad))
    row, err = ref.value[0], ref.error[0]
    expected = row[: real.n] - 1j * row[real.n :]
    error = np.hypot(err[: real.n], err[real.n :])
    return compare_arrays("grad vs FD (∂f/∂x − i·∂f/∂y)", "grad", ad, expected, error, dtype, tol)


def rotate(coords: np.ndarray, m: int) -> np.ndarray:
    """i·a in real output coordinates: (Re, Im) -> (−Im, Re), along the first axis."""
    return np.concatenate([-coords[m:], coords[:m]])


def _holomorphic_checks(
    real: Real, ref: fd.Estimate, dtype: str, tol: tuple[float, float], results: list[tuple[str, Any]]
) -> list[Finding]:
    """The complex Jacobian (both modes) as the real Jacobian it implies, and Cauchy-Riemann on FD."""
    from jaxdiff_cli.engine.layout import jacobian_matrix
    from jaxdiff_cli.engine.plans import jacobian
    from jaxdiff_cli.engine.problem import output_shape

    problem = real.problem
    n, m = real.n, real.m
    findings = []
    dx, dy = ref.value[:, :n], ref.value[:, n:]
    ex, ey = ref.error[:, :n], ref.error[:, n:]
    for mode in ("fwd", "rev"):
        result = jacobian(problem, mode)
        j = jacobian_matrix(result.outputs["jacobian"], output_shape(problem), problem.diff(problem.primals), problem.wrt).data
        results.append((f"jacobian ({mode})", j))
        # J along x_k is the column J[:, k]; along y_k, i·J[:, k]: in real output coordinates, both.
        along_x = np.concatenate([j.real, j.imag])
        implied = np.concatenate([along_x, rotate(along_x, m)], axis=1)
        findings.append(
            compare_arrays(f"jacobian {mode} vs FD (both real directions)", REAL_J, implied, ref.value, ref.error, dtype, tol)
        )
    cr = compare_arrays(CR_NAME, "∂f/∂y", dy, rotate(dx, m), ex + ey, dtype, tol)
    findings.append(_not_holomorphic(cr))
    return findings


def _one_sided_jacobian(
    real: Real, ref: fd.Estimate, dtype: str, tol: tuple[float, float], results: list[tuple[str, Any]]
) -> Finding:
    """The Jacobian where only one side is complex: its rows are JAX's gradients ∂f/∂x − i·∂f/∂y
    (complex inputs, reverse mode), or its columns ∂f/∂x (complex outputs, forward mode)."""
    from jaxdiff_cli.engine.layout import jacobian_matrix
    from jaxdiff_cli.engine.plans import jacobian
    from jaxdiff_cli.engine.problem import output_shape

    problem = real.problem
    if real.complex_in and real.complex_out:  # no complex Jacobian without --holomorphic
        return Finding(
            "jacobian vs FD", True, "not defined: f maps complex to complex and is not declared holomorphic", skipped=True
        )
    result = jacobian(problem, "auto")
    j = jacobian_matrix(result.outputs["jacobian"], output_shape(problem), problem.diff(problem.primals), problem.wrt).data
    results.append(("jacobian", j))
    if real.complex_in:
        implied = np.concatenate([j.real, -j.imag], axis=1)
    else:
        implied = np.concatenate([j.real, j.imag]) if np.iscomplexobj(j) else j
    mode = result.info.get("mode")
    return compare_arrays(f"jacobian {mode} vs FD", REAL_J, implied, ref.value, ref.error, dtype, tol)


def _not_holomorphic(finding: Finding) -> Finding:
    if finding.passed:
        return finding
    detail = f"{finding.detail}: f is not holomorphic at this point (drop --holomorphic, holomorphic: true)"
    return Finding(finding.name, False, detail, finding.worst)


def _cauchy_riemann_directions(
    real: Real, r0: np.ndarray, rng: np.random.Generator, dtype: str, tol: tuple[float, float]
) -> Finding:
    """Cauchy-Riemann along seeded random complex directions d: the difference along i·d is i times
    the difference along d."""
    d = rng.standard_normal((DIRECTIONS, real.n))
    zeros = np.zeros_like(d)
    along_x = fd.directional(real.f_batch, r0, np.concatenate([d, zeros], axis=1))
    along_y = fd.directional(real.f_batch, r0, np.concatenate([zeros, d], axis=1))
    rotated = rotate(along_x.value.T, real.m).T
    return _not_holomorphic(compare_arrays(CR_NAME, "∂f/∂y", along_y.value, rotated, along_x.error + along_y.error, dtype, tol))


def _adjoint(real: Real, rng: np.random.Generator, dtype: str, tol: tuple[float, float]) -> Finding:
    """Re⟨u, J t⟩ = Re⟨vjp(u), t⟩ for seeded complex u, t: forward and reverse mode against each other."""
    k = 4
    t = _random_in(real, rng, k)
    u = _random_out(real, rng, k)
    jt = _engine_jvp(real, t)
    w = _engine_vjp(real, u)
    return adjoint_finding("adjoint Re⟨u, Jt⟩ = Re⟨vjp(u), t⟩", "Re⟨vjp(u), t⟩", u, jt, w, t, dtype, tol)

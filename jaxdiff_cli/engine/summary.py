"""Facts about a Jacobian or Hessian: sparsity, norm; for a Hessian its symmetry and extreme eigenvalues.

Up to ``EIG_DENSE_MAX`` inputs the eigenvalues come from the Hessian itself; above that from Lanczos
iterations on Hessian-vector products (the Hessian is never decomposed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxdiff_cli.engine.layout import Matrix, flat_function
from jaxdiff_cli.engine.plans import hvp_product
from jaxdiff_cli.engine.problem import Problem
from jaxdiff_cli.ops import HESSIAN

EIG_DENSE_MAX = 500  # up to this size a Hessian's spectrum comes from the matrix, above from HVPs


def hvp_matvec(problem: Problem) -> Callable[[np.ndarray], np.ndarray]:
    """v -> H v on the flat inputs (float64 NumPy in and out), for Lanczos on a large Hessian."""
    flat_f, x, _, _ = flat_function(problem.of_diff(problem.primals), problem.diff(problem.primals))
    hv = jax.jit(lambda v: hvp_product(lambda y: flat_f(y)[0], x, v))
    return lambda v: np.asarray(hv(jax.numpy.asarray(v, x.dtype)), dtype=np.float64)


def lanczos_extremes(
    matvec: Callable[[np.ndarray], np.ndarray], n: int, steps: int = 200, seed: int = 0
) -> tuple[float, float, float, float]:
    """Smallest and largest eigenvalue of a symmetric operator from matrix-vector products alone,
    each with its residual bound (an eigenvalue lies within it of the Ritz value).

    Lanczos with full reorthogonalisation: the extreme Ritz values converge first, so a few hundred
    products at most give the ends of the spectrum of a matrix that is never formed.
    """
    k = min(steps, n)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(n)
    q /= np.linalg.norm(q)
    basis = np.zeros((k + 1, n))
    basis[0] = q
    alpha, beta = np.zeros(k), np.zeros(k)
    used = k
    for j in range(k):
        w = np.asarray(matvec(basis[j]), dtype=np.float64)
        if j > 0:
            w = w - beta[j - 1] * basis[j - 1]
        alpha[j] = w @ basis[j]
        w = w - alpha[j] * basis[j]
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)  # full reorthogonalisation
        beta[j] = np.linalg.norm(w)
        if beta[j] < 1e-12 * max(1.0, abs(alpha[j])):
            used = j + 1
            break
        basis[j + 1] = w / beta[j]
    t = np.diag(alpha[:used]) + np.diag(beta[: used - 1], 1) + np.diag(beta[: used - 1], -1)
    eig, vecs = np.linalg.eigh(t)
    last = beta[used - 1] if used == k else 0.0  # an invariant subspace was found: exact
    return float(eig[0]), float(eig[-1]), float(abs(last * vecs[-1, 0])), float(abs(last * vecs[-1, -1]))


def definiteness(lo: float, hi: float, scale: float) -> str:
    tol = 1e-10 * max(scale, 1e-300)
    if lo > tol:
        return "positive definite"
    if hi < -tol:
        return "negative definite"
    if lo >= -tol:
        return "positive semidefinite"
    if hi <= tol:
        return "negative semidefinite"
    return "indefinite"


def summary(m: Matrix, hvp: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Sparsity, norm, and for a Hessian its symmetry defect and extreme eigenvalues."""
    d = m.data
    finite = d[np.isfinite(d)]
    out: dict[str, Any] = {
        "shape": list(d.shape),
        "zeros": float(np.mean(d == 0)) if d.size else 0.0,
        "frobenius_norm": float(np.linalg.norm(finite)),
        "max_abs": float(np.max(np.abs(finite), initial=0.0)),
    }
    if m.kind == HESSIAN.name and d.shape[0] == d.shape[1] and d.size:
        norm = np.linalg.norm(d)
        out["symmetry_defect"] = float(np.linalg.norm(d - d.T) / norm) if norm else 0.0
        n = d.shape[0]
        if n <= EIG_DENSE_MAX or hvp is None:
            eig = np.linalg.eigvalsh((d + d.T) / 2)
            lo, hi, how = float(eig[0]), float(eig[-1]), "eigvalsh of the Hessian"
            out["eigenvalues"] = {"min": lo, "max": hi, "method": how}
        else:
            lo, hi, r_lo, r_hi = lanczos_extremes(hvp, n)
            how = "Lanczos on HVPs (the Hessian is not used)"
            out["eigenvalues"] = {"min": lo, "max": hi, "method": how, "residual_min": r_lo, "residual_max": r_hi}
        out["definiteness"] = definiteness(lo, hi, max(abs(lo), abs(hi)))
    return out

"""Directional derivatives by central differences with Richardson extrapolation, in float64.

No single step size is right for every function: a large step carries truncation error and can
cross a kink, a small one drowns in rounding. So (as numdifftools does) we take central
differences over a geometric ladder of steps, extrapolate each pair and triple (Richardson: the
error of a central difference is a series in h², h⁴, ...), estimate each extrapolated value's error
from its neighbours on the ladder plus its rounding error, and keep, entry by entry, the value
with the smallest estimate. Every point of the ladder is one batch of function evaluations (vmap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

EPS64 = float(np.finfo(np.float64).eps)
STEPS = 24  # h0 / 2**23 at the smallest: about 3e-8 of the scale, near float64's rounding limit
RATIO = 2.0
BASE = 0.25


def primals64(primals: Any, *, on_host: bool = False) -> Any:
    """The primals with float leaves in float64 and complex leaves in complex128 (integers as they
    are): the reference side of every check computes in 64 bits. Call it under jax.enable_x64.

    ``on_host``: widened in NumPy and placed as they are, with no JAX program per leaf (the same values).
    """
    import jax
    import jax.numpy as jnp

    def wide(a: Any) -> Any:
        if jnp.issubdtype(a.dtype, jnp.complexfloating):
            return jnp.asarray(np.asarray(a, np.complex128) if on_host else a, jnp.complex128)
        if jnp.issubdtype(a.dtype, jnp.floating):
            return jnp.asarray(np.asarray(a, np.float64) if on_host else a, jnp.float64)
        return a

    return jax.tree.map(wide, primals)


@dataclass(frozen=True)
class Estimate:
    """Derivative estimates and their error estimates, both (directions, outputs)."""

    value: np.ndarray
    error: np.ndarray


def directional(f_batch: Callable[[Any], Any], x: np.ndarray, directions: np.ndarray) -> Estimate:
    """Estimate J(x) d for each row d of ``directions`` (k, n); ``f_batch`` maps (p, n) -> (p, m).

    ``f_batch`` must evaluate in float64 (the caller jits a vmapped float64 function).
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.asarray(directions, dtype=np.float64)
    k, n = d.shape
    # Scale each direction's steps to the size of the coordinates it moves.
    dmax = np.max(np.abs(d), axis=1)
    dmax[dmax == 0] = 1.0
    scale = np.maximum(1.0, np.max(np.abs(x[None, :] * d), axis=1) / dmax)  # (k,)
    unit = d / dmax[:, None]
    h = BASE * scale[None, :] * RATIO ** -np.arange(STEPS)[:, None]  # (J, k)
    plus = x[None, None, :] + h[:, :, None] * unit[None, :, :]
    minus = x[None, None, :] - h[:, :, None] * unit[None, :, :]
    points = np.concatenate([plus, minus]).reshape(-1, n)
    values = np.asarray(f_batch(points), dtype=np.float64).reshape(2, STEPS, k, -1)
    fp, fm = values[0], values[1]  # (J, k, m)
    hh = h[:, :, None]
    d0 = (fp - fm) / (2 * hh)
    rounding = EPS64 * (np.abs(fp) + np.abs(fm) + 1e-300) / (2 * hh)
    # Richardson: central differences err ~ c2 h² + c4 h⁴ + ...; halving h cancels one term at a time.
    r1 = (RATIO**2 * d0[1:] - d0[:-1]) / (RATIO**2 - 1)
    r2 = (RATIO**4 * r1[1:] - r1[:-1]) / (RATIO**4 - 1)  # (J-2, k, m), built from steps j..j+2
    amplify = (RATIO**2 + 1) / (RATIO**2 - 1) * (RATIO**4 + 1) / (RATIO**4 - 1)
    round_r2 = 10 * amplify * np.maximum(np.maximum(rounding[:-2], rounding[1:-1]), rounding[2:])
    # Truncation error: how far each extrapolation sits from its neighbours on the ladder.
    neighbour = np.full_like(r2, np.inf)
    neighbour[1:-1] = np.maximum(np.abs(r2[1:-1] - r2[:-2]), np.abs(r2[1:-1] - r2[2:]))
    err = neighbour + round_r2
    err[~np.isfinite(err) | ~np.isfinite(r2)] = np.inf  # steps that left the domain (NaN) never win
    best = np.argmin(err, axis=0)  # (k, m)
    # The ladder moved along d / max|d|: scale back to the derivative along d itself.
    value = np.take_along_axis(r2, best[None], axis=0)[0] * dmax[:, None]
    error = np.take_along_axis(err, best[None], axis=0)[0] * dmax[:, None]
    return Estimate(value=value, error=error)


def jacobian(f_batch: Callable[[Any], Any], x: np.ndarray) -> Estimate:
    """The full Jacobian (m, n) by columns: directional derivatives along each basis vector."""
    est = directional(f_batch, x, np.eye(np.asarray(x).size))
    return Estimate(value=est.value.T, error=est.error.T)

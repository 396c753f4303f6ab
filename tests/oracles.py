"""Independent oracles: NumPy float64 central differences and closed forms. No JAX in here."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def fd_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences in float64: J[out..., in...] with error O(eps**2)."""
    x = np.asarray(x, dtype=np.float64)
    y0 = np.asarray(f(x), dtype=np.float64)
    jac = np.zeros(y0.shape + x.shape)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = eps * max(1.0, abs(x[idx]))
        h = step[idx]
        jac[(Ellipsis, *idx)] = (np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * h)
    return jac


def fd_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Second differences of a scalar function in float64."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    flat = x.ravel()
    hess = np.zeros((n, n))

    def at(v: np.ndarray) -> float:
        return float(f(v.reshape(x.shape)))

    for i in range(n):
        for j in range(n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = eps
            ej[j] = eps
            hess[i, j] = (at(flat + ei + ej) - at(flat + ei - ej) - at(flat - ei + ej) + at(flat - ei - ej)) / (4 * eps * eps)
    return hess.reshape(x.shape + x.shape)


def poly(x: np.ndarray) -> np.ndarray:
    """Seed 000's polynomial R^4 -> R^3."""
    return np.stack(
        [
            x[0] ** 6 * x[1] ** 4 * x[2] ** 9 * x[3] ** 2,
            x[0] ** 2 * x[1] ** 3 * x[2] ** 5 * x[3] ** 3,
            x[0] ** 5 * x[1] ** 7 * x[2] ** 7 * x[3] ** 6,
        ]
    )


def poly_jacobian(x: np.ndarray) -> np.ndarray:
    """Closed form: d(prod x_k^p_k)/dx_j = p_j / x_j * prod."""
    powers = np.array([[6, 4, 9, 2], [2, 3, 5, 3], [5, 7, 7, 6]], dtype=np.float64)
    value = poly(x)
    return value[:, None] * powers / x[None, :]


def mlp(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.tanh(params["W1"] @ x + params["b1"])
    h = np.tanh(params["W2"] @ h + params["b2"])
    return params["W3"] @ h + params["b3"]


def sigmoid_predict(W: np.ndarray, b: float, inputs: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh((inputs @ W + b) / 2) + 1)


def sigmoid_predict_jacobian(W: np.ndarray, b: float, inputs: np.ndarray) -> np.ndarray:
    p = sigmoid_predict(W, b, inputs)
    return (p * (1 - p))[:, None] * inputs

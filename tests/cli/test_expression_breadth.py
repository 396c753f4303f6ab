"""The wider allowlist (issue 20.1) through the CLI: a sample of every family, jaxdiff's gradient against
plain JAX's on random inputs (float64, and a float32 sample), and a few against closed forms and SciPy."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

# (family, expression of x, a vector of 3): each maps x into the function's domain itself.
SAMPLE = [
    ("jnp", "jnp.sum(jnp.nancumsum(x) * jnp.cumulative_sum(x))"),
    ("jnp", "jnp.polyval(x, x[0]) + jnp.sum(jnp.polymul(x, x))"),
    ("jnp", "jnp.sum(jnp.nanmedian(jnp.outer(x, x), axis=0)) + jnp.sum(jnp.vecmat(x, jnp.outer(x, x)))"),
    ("jnp.linalg", "jnp.sum(jnp.linalg.vecdot(x, x)) + jnp.sum(jnp.linalg.cross(x, x[::-1]))"),
    ("jnp.fft", "jnp.sum(jnp.fft.hfft(x))"),
    ("jax.scipy.special", "jnp.sum(jax.scipy.special.dawsn(x) + jax.scipy.special.owens_t(x, 0.5))"),
    ("jax.scipy.special", "jnp.sum(jax.scipy.special.spence(x**2 + 2.0) + jax.scipy.special.exp1(x**2 + 0.5))"),
    ("jax.scipy.stats", "jnp.sum(jax.scipy.stats.norm.logpdf(x, 0.3, 1.7) + jax.scipy.stats.t.logpdf(x, 4.0))"),
    (
        "jax.scipy.stats",
        "jnp.sum(jax.scipy.stats.gamma.logpdf(x**2 + 0.5, 3.0) + jax.scipy.stats.beta.cdf(jax.nn.sigmoid(x), 2.0, 3.0))",
    ),
    ("jax.scipy.stats", "jax.scipy.stats.multivariate_normal.logpdf(x, jnp.zeros(3), jnp.eye(3) * 2.0)"),
    ("jax.scipy.linalg", "jnp.sum(jax.scipy.linalg.expm(jnp.outer(x, x) * 0.1))"),
    ("jax.scipy.linalg", "jnp.sum(jax.scipy.linalg.solve_triangular(jnp.triu(jnp.outer(x, x)) + 4.0 * jnp.eye(3), x))"),
    ("jax.scipy.signal", "jnp.sum(jax.scipy.signal.convolve(x, x) ** 2)"),
    ("jax.nn", "jnp.sum(jax.nn.log1mexp(jnp.abs(x) + 0.1)) + jax.nn.logmeanexp(x)"),
    ("lax", "jnp.sum(lax.collapse(jnp.outer(x, x), 0)) + jnp.sum(lax.sort_key_val(x, x**2)[1])"),
]
X = np.random.default_rng(20).normal(size=3)


def _plain_jax(text: str) -> Any:
    import jax
    import jax.numpy as jnp
    from jax import lax

    return eval(f"lambda x: {text}", {"jax": jax, "jnp": jnp, "lax": lax})  # the test's own text, not user input


def _grad(cli: Any, text: str, x: np.ndarray, dtype: str) -> np.ndarray:
    ran = cli("grad", "-f", f"lambda x: {text}", "-p", f"x={json.dumps(x.tolist())}", "--dtype", dtype, "--json")
    assert ran.exit_code == 0, ran.stderr
    return np.asarray(ran.outputs()["grad.x"])


@pytest.mark.parametrize(("family", "text"), SAMPLE, ids=[f"{f}: {t[:50]}" for f, t in SAMPLE])
def test_a_sample_of_every_family_matches_plain_jax_in_float64(cli: Any, family: str, text: str) -> None:
    import jax

    with jax.enable_x64(True):
        expected = np.asarray(jax.grad(_plain_jax(text))(np.asarray(X, np.float64)))
    assert np.all(np.isfinite(expected)) and np.any(expected != 0)
    np.testing.assert_allclose(_grad(cli, text, X, "float64"), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("family", "text"), SAMPLE[::3], ids=[f"{f}: {t[:50]}" for f, t in SAMPLE[::3]])
def test_a_float32_sample_matches_plain_jax(cli: Any, family: str, text: str) -> None:
    import jax

    expected = np.asarray(jax.grad(_plain_jax(text))(np.asarray(X, np.float32)))
    np.testing.assert_allclose(_grad(cli, text, X, "float32"), expected, rtol=2e-4, atol=1e-5)


def test_closed_forms(cli: Any) -> None:
    import scipy.special

    mu, sigma = 0.3, 1.7
    # d/dx log N(x; mu, sigma) = -(x - mu) / sigma**2
    got = _grad(cli, "jnp.sum(jax.scipy.stats.norm.logpdf(x, 0.3, 1.7))", X, "float64")
    np.testing.assert_allclose(got, -(X - mu) / sigma**2, rtol=1e-13)
    # d/dx log Cauchy(x) = -2x / (1 + x**2); d/dx logistic.cdf(x) = its pdf, e^-x / (1 + e^-x)**2
    got = _grad(cli, "jnp.sum(jax.scipy.stats.cauchy.logpdf(x) + jax.scipy.stats.logistic.cdf(x))", X, "float64")
    np.testing.assert_allclose(got, -2 * X / (1 + X**2) + np.exp(-X) / (1 + np.exp(-X)) ** 2, rtol=1e-12)
    # polyval by Horner: d/dx (c0 x^2 + c1 x + c2) = 2 c0 x + c1
    got = _grad(cli, "jnp.sum(jnp.polyval(jnp.array([1.5, -2.0, 0.25]), x))", X, "float64")
    np.testing.assert_allclose(got, 3.0 * X - 2.0, rtol=1e-13)
    # Dawson's integral: D'(x) = 1 - 2 x D(x), with SciPy's D (no JAX in the oracle)
    got = _grad(cli, "jnp.sum(jax.scipy.special.dawsn(x))", X, "float64")
    np.testing.assert_allclose(got, 1 - 2 * X * scipy.special.dawsn(X), rtol=1e-10)
    # expm of a diagonal matrix: d/dx sum(expm(diag(x))) = exp(x)
    got = _grad(cli, "jnp.sum(jax.scipy.linalg.expm(jnp.diag(x)))", X, "float64")
    np.testing.assert_allclose(got, np.exp(X), rtol=1e-12)
    assert math.isclose(float(got[0]), math.exp(X[0]), rel_tol=1e-12)

"""The logistic-regression predictor of seeds 001 and 003 (JAX's autodiff guide)."""

import jax.numpy as jnp


def sigmoid(x):
    return 0.5 * (jnp.tanh(x / 2) + 1)


def predict(W, b, inputs):
    """Probability of each label being true."""
    return sigmoid(jnp.dot(inputs, W) + b)

"""A 3-layer tanh MLP R^4 -> R^3 with its parameters in a dict, as in seed 004's model_jvp / model_vjp."""

import jax.numpy as jnp


def mlp(params, x):
    h = jnp.tanh(params["W1"] @ x + params["b1"])
    h = jnp.tanh(params["W2"] @ h + params["b2"])
    return params["W3"] @ h + params["b3"]
